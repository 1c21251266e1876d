_base_ = 'mmseg::_base_/models/erfnet_fcn.py'
custom_imports = dict(imports=['moe_seg_plugin'], allow_failed_imports=False)
# MMSeg's own ERFNet backbone with an FCN head (trained from scratch, as in
# MMSeg's erfnet_fcn Cityscapes config).
