# Generated street scenes in the Cityscapes layout
# (python tools/misc/generate_street_data.py --layout cityscapes): MMSeg's stock
# Cityscapes settings pointed at data/street_cityscapes/ and scaled to the generated
# 256x512 images (pipelines in street_pipelines.py).
_base_ = ['mmseg::_base_/datasets/cityscapes.py', './street_pipelines.py']

data_root = 'data/street_cityscapes/'
crop_size = _base_.street_crop_size
train_pipeline = _base_.street_train_pipeline
test_pipeline = _base_.street_test_pipeline
tta_pipeline = _base_.street_tta_pipeline
train_dataloader = dict(
    num_workers=2,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=2,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
