_base_ = [
    './deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py',
    '../_base_/moe/patch_moe_paper.py'
]
model = dict(
    decode_head=dict(
        type='PatchMoEHead',
        head_type='DepthwiseSeparableASPPHead',
        moe=_base_.moe_paper))
