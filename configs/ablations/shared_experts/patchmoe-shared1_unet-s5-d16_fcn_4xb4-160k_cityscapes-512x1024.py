_base_ = [
    '../../unet/unet-s5-d16_fcn_4xb4-160k_cityscapes-512x1024.py',
    '../../_base_/moe/patch_moe_paper.py'
]
# Shared vs independent experts: the paper default (8 routed experts,
# ../../unet/patchmoe_unet-s5-d16_fcn_4xb4-160k_cityscapes-512x1024.py) plus one always-on shared expert
# added to every patch's mixture.
model = dict(
    decode_head=dict(
        type='PatchMoEHead',
        head_type='FCNHead',
        moe=dict(_base_.moe_paper, num_shared_experts=1)))
