# UPerNet with mmpretrain's ConvNeXt-T backbone, as in MMSeg's
# convnext-tiny_upernet configs. `mmpretrain.ConvNeXt` comes from
# mmpretrain's model zoo, which imports torchvision: install the plugin with
# its mmpretrain extra (pip install -e ".[mmpretrain]", see the README's
# "mmpretrain backbones"). The model zoo is imported when the backbone is
# built, not when the config is read, so MMSeg's stock
# `custom_imports = dict(imports='mmpretrain.models')` is replaced.
_base_ = 'mmseg::_base_/models/upernet_convnext.py'
custom_imports = dict(imports=['moe_seg_plugin'], allow_failed_imports=False)
# MMSeg's stock model starts from ImageNet weights downloaded at init
# (https://download.openmmlab.com/mmclassification/v0/convnext/downstream/
# convnext-tiny_3rdparty_32xb128-noema_in1k_20220301-795e9634.pth). Nothing
# downloads here, so it trains from scratch; if you have the file, set
# model.backbone.init_cfg=dict(type='Pretrained', checkpoint=PATH,
# prefix='backbone.').
model = dict(
    pretrained=None,
    backbone=dict(arch='tiny', drop_path_rate=0.4, init_cfg=None),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
