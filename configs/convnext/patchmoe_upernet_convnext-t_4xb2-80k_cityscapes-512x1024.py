_base_ = [
    './upernet_convnext-t_4xb2-80k_cityscapes-512x1024.py',
    '../_base_/moe/patch_moe_paper.py'
]
# One PatchConvMoE layer in the decode head, at its default target (UPerHead's
# last conv before the classifier, fpn_bottleneck).
model = dict(
    decode_head=dict(
        type='PatchMoEHead',
        head_type='UPerHead',
        moe=_base_.moe_paper))
