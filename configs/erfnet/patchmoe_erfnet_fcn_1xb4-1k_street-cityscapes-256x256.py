_base_ = [
    './erfnet_fcn_1xb4-1k_street-cityscapes-256x256.py',
    '../_base_/moe/patch_moe_paper.py'
]
model = dict(
    decode_head=dict(
        type='PatchMoEHead',
        head_type='FCNHead',
        moe=_base_.moe_paper))
