_base_ = 'mmseg::_base_/models/pspnet_r50-d8.py'
custom_imports = dict(imports=['moe_seg_plugin'], allow_failed_imports=False)
# MMSeg's stock model starts from ImageNet weights downloaded at init
# ('open-mmlab://resnet50_v1c'). Nothing downloads here, so it trains from
# scratch; if you have the weights, set `model.pretrained` to that URL or to
# a local file.
model = dict(pretrained=None)
