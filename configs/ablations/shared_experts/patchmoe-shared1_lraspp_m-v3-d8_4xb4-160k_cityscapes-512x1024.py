_base_ = [
    '../../lraspp/lraspp_m-v3-d8_4xb4-160k_cityscapes-512x1024.py',
    '../../_base_/moe/patch_moe_paper.py'
]
# Shared vs independent experts: the paper default (8 routed experts,
# ../../lraspp/patchmoe_lraspp_m-v3-d8_4xb4-160k_cityscapes-512x1024.py) plus one always-on shared expert
# added to every patch's mixture.
model = dict(
    decode_head=dict(
        type='PatchMoEHead',
        head_type='LRASPPHead',
        moe=dict(_base_.moe_paper, num_shared_experts=1)))
