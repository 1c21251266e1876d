# ENet (Paszke et al. 2016; ~0.37 M parameters), ported to MMSeg by this
# plugin: the ENet backbone runs from the initial block to bottleneck 5.0,
# ENetHead holds bottleneck 5.1 and the final transposed convolution.
# Trained from scratch (ENet has no ImageNet pre-training).
custom_imports = dict(imports=['moe_seg_plugin'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        type='ENet',
        in_channels=3,
        channels=(16, 64, 128),
        dropouts=(0.01, 0.1)),
    decode_head=dict(
        type='ENetHead',
        in_channels=16,
        channels=16,
        dropout=0.1,
        dropout_ratio=0,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
