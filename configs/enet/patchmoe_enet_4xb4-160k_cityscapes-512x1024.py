_base_ = [
    './enet_4xb4-160k_cityscapes-512x1024.py',
    '../_base_/moe/patch_moe_paper.py'
]
model = dict(
    decode_head=dict(
        type='PatchMoEHead',
        head_type='ENetHead',
        moe=_base_.moe_paper))
