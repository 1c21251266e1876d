_base_ = [
    './ocrnet_r18-d8_1xb4-1k_street-cityscapes-256x256.py',
    '../_base_/moe/patch_moe_paper.py'
]
# The cascade's last head, the OCRHead, gets the MoE layer (at its default
# target, object_context_block.bottleneck: the 1x1 conv before its
# classifier); the FCNHead that feeds it its coarse logits stays stock.
model = dict(decode_head=[
    _base_.fcn_head,
    dict(
        _base_.ocr_head,
        type='PatchMoEHead',
        head_type='OCRHead',
        moe=_base_.moe_paper)
])
