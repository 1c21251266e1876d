_base_ = [
    '../_base_/models/lraspp_m-v3-d8.py',
    '../_base_/datasets/street_cityscapes.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_street.py'
]
# LR-ASPP's image pool is a fixed 49x49 window on the 1/8 feature map, so it
# needs inputs of about 392 px or more: the 256x512 street scenes are scaled
# up 2x and cropped to 448x448 (the file name keeps the family's name).
crop_size = (448, 448)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(1024, 512),
        ratio_range=(1.0, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1024, 512), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
