_base_ = [
    '../../erfnet/erfnet_fcn_4xb4-160k_cityscapes-512x1024.py',
    '../../_base_/moe/patch_moe_paper.py'
]
# Placement study: two stacked PatchConvMoE layers at the end of the
# decoder (decode_head.convs.0, then decode_head.conv_seg); the paper found stacking
# several MoE layers trained unstably.
model = dict(
    type='PatchMoESegmentor',
    moe_layers=[
        dict(_base_.moe_paper, target='decode_head.convs.0'),
        dict(_base_.moe_paper, target='decode_head.conv_seg'),
    ])
