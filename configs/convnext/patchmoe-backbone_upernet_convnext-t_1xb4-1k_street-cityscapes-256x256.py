_base_ = [
    './upernet_convnext-t_1xb4-1k_street-cityscapes-256x256.py',
    '../_base_/moe/patch_moe_paper.py'
]
# One PatchConvMoE layer inside the ConvNeXt-T backbone: the 7x7 depthwise
# conv of the first block of the last stage (768 channels, 1/32 scale).
model = dict(
    type='PatchMoESegmentor',
    moe_layers=[
        dict(_base_.moe_paper, target='backbone.stages.3.0.depthwise_conv')
    ])
