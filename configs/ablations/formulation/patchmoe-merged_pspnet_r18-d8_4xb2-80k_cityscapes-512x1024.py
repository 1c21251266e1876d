_base_ = [
    '../../pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    '../../_base_/moe/patch_moe_merged.py'
]
# Formulation: the experts are the replaced convolution only (expert_scope=
# 'conv'); its batch norm and ReLU run once on the mixed map, and in eval
# each patch's top-k kernels are merged into one, so inference convolves
# each patch once, as the stock model does. Compare with the paper default,
# ../../pspnet/patchmoe_pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py.
model = dict(
    decode_head=dict(
        type='PatchMoEHead',
        head_type='PSPHead',
        moe=_base_.moe_merged))
