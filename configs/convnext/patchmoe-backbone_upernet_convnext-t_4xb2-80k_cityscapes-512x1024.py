_base_ = [
    './upernet_convnext-t_4xb2-80k_cityscapes-512x1024.py',
    '../_base_/moe/patch_moe_paper.py'
]
# One PatchConvMoE layer inside the ConvNeXt-T backbone: the 7x7 depthwise
# conv of the first block of the last stage (768 channels, 1/32 scale).
model = dict(
    type='PatchMoESegmentor',
    moe_layers=[
        dict(_base_.moe_paper, target='backbone.stages.3.0.depthwise_conv')
    ])
