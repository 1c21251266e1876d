_base_ = [
    '../../lraspp/lraspp_m-v3-d8_4xb4-160k_cityscapes-512x1024.py',
    '../../_base_/moe/patch_moe_paper.py'
]
# Placement study: one PatchConvMoE layer in the encoder (backbone.layer16).
model = dict(
    type='PatchMoESegmentor',
    moe_layers=[dict(_base_.moe_paper, target='backbone.layer16')])
