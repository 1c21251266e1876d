_base_ = 'mmseg::_base_/models/fcn_unet_s5-d16.py'
custom_imports = dict(imports=['moe_seg_plugin'], allow_failed_imports=False)
# U-Net S5-D16 with an FCN head, set up for the 19 Cityscapes classes and
# whole-image inference as in MMSeg's unet-s5-d16_fcn Cityscapes config.
model = dict(
    decode_head=dict(num_classes=19),
    auxiliary_head=dict(num_classes=19),
    test_cfg=dict(_delete_=True, mode='whole'))
