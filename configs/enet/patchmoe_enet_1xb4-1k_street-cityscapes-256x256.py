_base_ = [
    './enet_1xb4-1k_street-cityscapes-256x256.py',
    '../_base_/moe/patch_moe_paper.py'
]
model = dict(
    decode_head=dict(
        type='PatchMoEHead',
        head_type='ENetHead',
        moe=_base_.moe_paper))
