_base_ = 'mmseg::_base_/models/lraspp_m-v3-d8.py'
custom_imports = dict(imports=['moe_seg_plugin'], allow_failed_imports=False)
# MMSeg's stock Cityscapes config adds ImageNet weights downloaded at init
# ('open-mmlab://contrib/mobilenet_v3_large'); here the model trains from
# scratch (MMSeg's "scratch" variant). Set `model.pretrained` if you have
# them. Note: the head's image pool is a fixed AvgPool2d(49, stride=(16, 20))
# on the 1/8 feature map, so inputs need about 392 px or more a side.
model = dict(pretrained=None)
