_base_ = [
    '../_base_/models/lraspp_m-v3-d8.py', 'mmseg::_base_/datasets/bdd100k.py',
    '../_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py'
]
crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
train_dataloader = dict(batch_size=4, num_workers=4)
val_dataloader = dict(batch_size=1, num_workers=4)
test_dataloader = val_dataloader
