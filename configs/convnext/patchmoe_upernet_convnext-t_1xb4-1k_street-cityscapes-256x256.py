_base_ = [
    './upernet_convnext-t_1xb4-1k_street-cityscapes-256x256.py',
    '../_base_/moe/patch_moe_paper.py'
]
# One PatchConvMoE layer in the decode head, at its default target (UPerHead's
# last conv before the classifier, fpn_bottleneck).
model = dict(
    decode_head=dict(
        type='PatchMoEHead',
        head_type='UPerHead',
        moe=_base_.moe_paper))
