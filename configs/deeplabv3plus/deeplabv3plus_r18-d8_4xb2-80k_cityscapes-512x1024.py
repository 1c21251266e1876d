_base_ = [
    '../_base_/models/deeplabv3plus_r18-d8.py', 'mmseg::_base_/datasets/cityscapes.py',
    '../_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py'
]
crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
