_base_ = [
    'mmseg::_base_/models/ocrnet_r50-d8.py',
    '../_base_/datasets/street_cityscapes.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_street.py'
]
custom_imports = dict(imports=['moe_seg_plugin'], allow_failed_imports=False)
# OCRNet (CascadeEncoderDecoder: an FCNHead's coarse logits feed the
# OCRHead) with ResNet-18-D8. MMSeg ships OCRNet with R50/R101 and HRNet
# only; the head channels here are MMSeg's R50 ones scaled to ResNet-18's
# stage widths as its pspnet_r18-d8 configs scale PSPNet's (in_channels and
# channels / 4). Stock weights: 'open-mmlab://resnet18_v1c' (set
# `model.pretrained`); nothing downloads here, so it trains from scratch.
norm_cfg = dict(type='SyncBN', requires_grad=True)
fcn_head = dict(
    type='FCNHead',
    in_channels=256,
    in_index=2,
    channels=64,
    num_convs=1,
    concat_input=False,
    dropout_ratio=0.1,
    num_classes=19,
    norm_cfg=norm_cfg,
    align_corners=False,
    loss_decode=dict(
        type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4))
ocr_head = dict(
    type='OCRHead',
    in_channels=512,
    in_index=3,
    channels=128,
    ocr_channels=64,
    dropout_ratio=0.1,
    num_classes=19,
    norm_cfg=norm_cfg,
    align_corners=False,
    loss_decode=dict(
        type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0))
crop_size = (256, 256)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(depth=18),
    decode_head=[fcn_head, ocr_head])
train_dataloader = dict(batch_size=4)
