_base_ = './deeplabv3plus_r50-d8.py'
# ResNet-18-D8 as in MMSeg's deeplabv3plus_r18-d8 configs. Stock weights:
# 'open-mmlab://resnet18_v1c' (set `model.pretrained` if you have them).
model = dict(
    backbone=dict(depth=18),
    decode_head=dict(
        c1_in_channels=64, c1_channels=12, in_channels=512, channels=128),
    auxiliary_head=dict(in_channels=256, channels=64))
