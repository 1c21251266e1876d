_base_ = [
    './lraspp_m-v3-d8_1xb4-1k_street-cityscapes-256x256.py',
    '../_base_/moe/patch_moe_paper.py'
]
model = dict(
    decode_head=dict(
        type='PatchMoEHead',
        head_type='LRASPPHead',
        moe=_base_.moe_paper))
