_base_ = './pspnet_r50-d8.py'
# ResNet-18-D8 as in MMSeg's pspnet_r18-d8 configs. Stock weights:
# 'open-mmlab://resnet18_v1c' (set `model.pretrained` if you have them).
model = dict(
    backbone=dict(depth=18),
    decode_head=dict(in_channels=512, channels=128),
    auxiliary_head=dict(in_channels=256, channels=64))
