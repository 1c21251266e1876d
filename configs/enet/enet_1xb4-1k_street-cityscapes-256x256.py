_base_ = [
    '../_base_/models/enet.py',
    '../_base_/datasets/street_cityscapes.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_street.py'
]
crop_size = (256, 256)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
train_dataloader = dict(batch_size=4)
