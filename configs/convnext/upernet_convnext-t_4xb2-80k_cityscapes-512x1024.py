_base_ = [
    '../_base_/models/upernet_convnext-t.py',
    'mmseg::_base_/datasets/cityscapes.py', '../_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py'
]
crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
# ConvNeXt's recipe from MMSeg's convnext configs (AdamW, stage-wise
# learning-rate decay, linear warm-up then poly decay), without AMP so that
# it runs on any device; add --amp to tools/train.py on a GPU.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise', num_layers=6),
    constructor='LearningRateDecayOptimizerConstructor')
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
        end=1500),
    dict(
        type='PolyLR',
        power=1.0,
        begin=1500,
        end=80000,
        eta_min=0.0,
        by_epoch=False)
]
train_dataloader = dict(batch_size=2)
