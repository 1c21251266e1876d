_base_ = [
    '../../unet/unet-s5-d16_fcn_4xb4-160k_cityscapes-512x1024.py',
    '../../_base_/moe/patch_moe_paper.py'
]
# Placement study: one PatchConvMoE layer in the encoder (backbone.encoder.4.1.convs.1).
model = dict(
    type='PatchMoESegmentor',
    moe_layers=[dict(_base_.moe_paper, target='backbone.encoder.4.1.convs.1')])
