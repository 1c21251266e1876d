_base_ = [
    '../../pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    '../../_base_/moe/patch_moe_paper.py'
]
# Placement study: one PatchConvMoE layer in the encoder (backbone.layer4.1.conv2).
model = dict(
    type='PatchMoESegmentor',
    moe_layers=[dict(_base_.moe_paper, target='backbone.layer4.1.conv2')])
