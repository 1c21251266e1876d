_base_ = [
    '../../erfnet/erfnet_fcn_4xb4-160k_cityscapes-512x1024.py',
    '../../_base_/moe/patch_moe_paper.py'
]
# Placement study: the classifier (conv_seg) is the PatchConvMoE layer.
model = dict(
    decode_head=dict(
        type='PatchMoEHead',
        head_type='FCNHead',
        moe=dict(_base_.moe_paper, target='conv_seg')))
