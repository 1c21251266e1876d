_base_ = [
    '../../enet/enet_4xb4-160k_cityscapes-512x1024.py',
    '../../_base_/moe/patch_moe_paper.py'
]
# Placement study: one PatchConvMoE layer in the encoder (backbone.stage3.7.ext).
model = dict(
    type='PatchMoESegmentor',
    moe_layers=[dict(_base_.moe_paper, target='backbone.stage3.7.ext')])
