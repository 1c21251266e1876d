_base_ = [
    '../../deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    '../../_base_/moe/patch_moe_paper.py'
]
# Placement study: the classifier (conv_seg) is the PatchConvMoE layer.
model = dict(
    decode_head=dict(
        type='PatchMoEHead',
        head_type='DepthwiseSeparableASPPHead',
        moe=dict(_base_.moe_paper, target='conv_seg')))
