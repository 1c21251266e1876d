_base_ = [
    '../_base_/models/upernet_convnext-t.py',
    '../_base_/datasets/street_cityscapes.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_street.py'
]
crop_size = (256, 256)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
train_dataloader = dict(batch_size=4)
# ConvNeXt trains with AdamW (MMSeg's convnext configs); from scratch on the
# short street schedule: a 50-iteration warm-up, then poly decay.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=0.0002, betas=(0.9, 0.999), weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=50),
    dict(
        type='PolyLR',
        power=1.0,
        begin=50,
        end=1000,
        eta_min=0.0,
        by_epoch=False)
]
