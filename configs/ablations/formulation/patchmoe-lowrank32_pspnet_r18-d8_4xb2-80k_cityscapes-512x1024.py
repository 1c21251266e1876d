_base_ = [
    '../../pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    '../../_base_/moe/patch_moe_lowrank.py'
]
# Formulation: low-rank experts. The bottleneck's 3x3 convolution (1024 ->
# 128 channels, 1.18 M parameters) becomes one shared 3x3 convolution to 32
# channels and eight 1x1 experts 32 -> 128, merged per patch; its batch norm
# and ReLU run once on the mixed map. 11.80 M parameters against the stock
# model's 12.64 M (the paper default,
# ../../pspnet/patchmoe_pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py, has
# 20.91 M: eight full copies of that convolution).
model = dict(
    decode_head=dict(
        type='PatchMoEHead',
        head_type='PSPHead',
        moe=_base_.moe_lowrank32))
