_base_ = [
    '../../pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    '../../_base_/moe/patch_moe_paper.py'
]
# Placement study: two stacked PatchConvMoE layers at the end of the
# decoder (decode_head.bottleneck, then decode_head.conv_seg); the paper found stacking
# several MoE layers trained unstably.
model = dict(
    type='PatchMoESegmentor',
    moe_layers=[
        dict(_base_.moe_paper, target='decode_head.bottleneck'),
        dict(_base_.moe_paper, target='decode_head.conv_seg'),
    ])
