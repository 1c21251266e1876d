_base_ = [
    '../../pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    '../../_base_/moe/patch_moe_paper.py'
]
# Shared vs independent experts: the paper default (8 routed experts,
# ../../pspnet/patchmoe_pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py) plus one always-on shared expert
# added to every patch's mixture.
model = dict(
    decode_head=dict(
        type='PatchMoEHead',
        head_type='PSPHead',
        moe=dict(_base_.moe_paper, num_shared_experts=1)))
