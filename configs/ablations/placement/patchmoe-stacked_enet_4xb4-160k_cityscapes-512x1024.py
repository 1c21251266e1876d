_base_ = [
    '../../enet/enet_4xb4-160k_cityscapes-512x1024.py',
    '../../_base_/moe/patch_moe_paper.py'
]
# Placement study: two stacked PatchConvMoE layers at the end of the
# decoder (backbone.stage4.1.ext, then decode_head.bottleneck.ext); the paper found stacking
# several MoE layers trained unstably.
model = dict(
    type='PatchMoESegmentor',
    moe_layers=[
        dict(_base_.moe_paper, target='backbone.stage4.1.ext'),
        dict(_base_.moe_paper, target='decode_head.bottleneck.ext'),
    ])
