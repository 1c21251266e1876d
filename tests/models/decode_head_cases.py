"""The decode heads of MMSeg as small test cases: per head, the settings of
its stock use (scaled down: few channels, 4-64 pixel maps) and the inputs
its forward takes (``CASES``), the heads left out with why (``SKIPPED``),
and builders of a case's head, plain or wrapped by PatchMoEHead.

Shared by test_every_decode_head.py and test_default_target.py.
"""
import copy
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from mmseg.registry import MODELS

NUM_CLASSES = 5
BATCH = 2
BN = dict(type='BN')
CE = dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)
OHEM = dict(type='OhemCrossEntropy', thres=0.9, min_kept=100)
Shapes = Tuple[Tuple[int, int], ...]  # (channels, side) per map


@dataclass
class Case:
    """How one head is built and fed.

    Args:
        cfg (dict): Head settings (``type`` is added). ``num_classes`` and
            ``norm_cfg`` are added unless ``plain`` is set.
        maps (tuple): (channels, side) of each input map in eval.
        train_maps (tuple, optional): The same in training, where the head
            takes other inputs than in eval (DDRHead, PIDHead).
        bare (bool): The eval input is the one map itself, not a list.
        pairs (bool): Each input is a (map, class token) pair (ViT, DPT).
        plain (bool): Do not add ``num_classes`` / ``norm_cfg``.
        gt (str): Extra ground truth the loss reads: 'edge' or 'depth'.
    """
    cfg: dict
    maps: Shapes
    train_maps: Optional[Shapes] = None
    bare: bool = False
    pairs: bool = False
    plain: bool = False
    gt: Optional[str] = None


def _knet() -> dict:
    update = dict(
        type='KernelUpdateHead', num_classes=NUM_CLASSES, num_ffn_fcs=2,
        num_heads=2, num_mask_fcs=1, feedforward_channels=16, in_channels=8,
        out_channels=8, dropout=0.0, conv_kernel_size=1, with_ffn=True,
        ffn_act_cfg=dict(type='ReLU', inplace=True),
        feat_transform_cfg=dict(conv_cfg=dict(type='Conv2d'), act_cfg=None),
        kernel_updator_cfg=dict(
            type='KernelUpdator', in_channels=8, feat_channels=8,
            out_channels=8, act_cfg=dict(type='ReLU', inplace=True),
            norm_cfg=dict(type='LN')))
    return dict(
        num_stages=2, kernel_update_head=[update, copy.deepcopy(update)],
        kernel_generate_head=dict(
            type='FCNHead', in_channels=16, channels=8, num_convs=2,
            concat_input=True, num_classes=NUM_CLASSES, norm_cfg=BN))


SINGLE = ((16, 16), )
PYRAMID = ((4, 32), (8, 16), (8, 8), (16, 4))

#: Settings of each head's stock use (from MMSeg's configs and head tests),
#: scaled down.
CASES: Dict[str, Case] = {
    'ANNHead': Case(
        dict(in_channels=[8, 16], in_index=[0, 1], channels=8,
             project_channels=4, query_scales=(1, ),
             key_pool_scales=(1, 3, 6, 8)), ((8, 16), (16, 16))),
    'APCHead': Case(
        dict(in_channels=16, channels=8, pool_scales=(1, 2, 3, 6)), SINGLE),
    'ASPPHead': Case(
        dict(in_channels=16, channels=8, dilations=(1, 6, 12, 18)), SINGLE),
    'DAHead': Case(dict(in_channels=16, channels=8, pam_channels=4), SINGLE),
    'DDRHead': Case(
        dict(in_channels=16, channels=8, loss_decode=[CE, CE]), SINGLE,
        train_maps=((8, 16), (16, 16)), bare=True),
    'DMHead': Case(
        dict(in_channels=16, channels=8, filter_sizes=(1, 3, 5, 7),
             fusion=False), SINGLE),
    'DNLHead': Case(
        dict(in_channels=16, channels=8, reduction=2, use_scale=True,
             mode='embedded_gaussian'), SINGLE),
    'DPTHead': Case(
        dict(in_channels=[16] * 4, in_index=[0, 1, 2, 3],
             input_transform='multiple_select', embed_dims=16,
             post_process_channels=[4, 8, 16, 16], channels=8,
             readout_type='project'), ((16, 4), ) * 4, pairs=True),
    'DepthwiseSeparableASPPHead': Case(
        dict(in_channels=16, in_index=1, channels=8, dilations=(1, 6, 12, 18),
             c1_in_channels=4, c1_channels=4), ((4, 32), (16, 16))),
    'DepthwiseSeparableFCNHead': Case(
        dict(in_channels=16, channels=16, concat_input=False), SINGLE),
    'EMAHead': Case(
        dict(in_channels=16, channels=8, ema_channels=8, num_bases=4,
             num_stages=2, momentum=0.1), SINGLE),
    'ENetHead': Case(dict(in_channels=16, channels=16), SINGLE),
    'EncHead': Case(
        dict(in_channels=[4, 8, 16], in_index=(0, 1, 2), channels=8,
             num_codes=4, use_se_loss=True, add_lateral=False),
        ((4, 16), (8, 16), (16, 16))),
    'FCNHead': Case(
        dict(in_channels=16, channels=8, num_convs=2, concat_input=True),
        SINGLE),
    'FPNHead': Case(
        dict(in_channels=[8] * 4, in_index=[0, 1, 2, 3],
             feature_strides=[4, 8, 16, 32], channels=8),
        ((8, 32), (8, 16), (8, 8), (8, 4))),
    'GCHead': Case(
        dict(in_channels=16, channels=8, ratio=1 / 4., pooling_type='att',
             fusion_types=('channel_add', )), SINGLE),
    'ISAHead': Case(
        dict(in_channels=16, channels=8, isa_channels=4, down_factor=(8, 8)),
        SINGLE),
    'IterativeDecodeHead': Case(_knet(), SINGLE, plain=True),
    'LRASPPHead': Case(
        dict(in_channels=(8, 8, 16), in_index=(0, 1, 2), channels=8,
             input_transform='multiple_select', branch_channels=(4, 4)),
        ((8, 64), (8, 49), (16, 49))),
    'LightHamHead': Case(
        dict(in_channels=[8, 8, 16], in_index=[1, 2, 3], channels=8,
             ham_channels=8, norm_cfg=dict(type='GN', num_groups=4),
             ham_kwargs=dict(MD_S=1, MD_R=4, train_steps=6, eval_steps=7,
                             inv_t=100, rand_init=True)), PYRAMID),
    'NLHead': Case(
        dict(in_channels=16, channels=8, reduction=2, use_scale=True,
             mode='embedded_gaussian'), SINGLE),
    'OCRHead': Case(dict(in_channels=16, channels=8, ocr_channels=4),
                    SINGLE),
    'PIDHead': Case(
        dict(in_channels=16, channels=8,
             loss_decode=[CE, OHEM, dict(type='BoundaryLoss'), OHEM]), SINGLE,
        train_maps=((8, 16), (16, 16), (8, 16)), bare=True, gt='edge'),
    'PSPHead': Case(
        dict(in_channels=16, channels=8, pool_scales=(1, 2, 3, 6)), SINGLE),
    'SETRMLAHead': Case(
        dict(in_channels=(8, ) * 4, in_index=(0, 1, 2, 3), channels=16,
             mla_channels=4, up_scale=4), ((8, 8), ) * 4),
    'SETRUPHead': Case(
        dict(in_channels=16, channels=8, num_convs=2, up_scale=2,
             kernel_size=3,
             norm_layer=dict(type='LN', eps=1e-6, requires_grad=True)),
        ((16, 8), )),
    'STDCHead': Case(
        dict(in_channels=16, channels=8, num_convs=1, num_classes=2,
             boundary_threshold=0.1, concat_input=False, norm_cfg=BN,
             loss_decode=[
                 dict(type='CrossEntropyLoss', loss_name='loss_ce',
                      use_sigmoid=True, loss_weight=1.0),
                 dict(type='DiceLoss', loss_name='loss_dice',
                      loss_weight=1.0)
             ]), SINGLE, plain=True),
    'SegformerHead': Case(
        dict(in_channels=[4, 8, 8, 16], in_index=[0, 1, 2, 3], channels=8),
        PYRAMID),
    'UPerHead': Case(
        dict(in_channels=[4, 8, 8, 16], in_index=[0, 1, 2, 3], channels=8,
             pool_scales=(1, 2, 3, 6)), PYRAMID),
    'VPDDepthHead': Case(
        dict(max_depth=10.0, in_channels=[16] * 4, embed_dim=4,
             feature_dim=32, num_deconv_layers=1, num_deconv_filters=(8, ),
             loss_decode=dict(type='SiLogLoss')),
        ((16, 32), (16, 16), (16, 8), (16, 4)), plain=True, gt='depth'),
}

#: Registered heads this file cannot cover, and why.
SKIPPED: Dict[str, str] = {
    'CCHead': 'needs compiled mmcv ops (mmcv.ops.CrissCrossAttention); '
    'mmcv-lite has none',
    'PSAHead': 'needs compiled mmcv ops (mmcv.ops.PSAMask); mmcv-lite has '
    'none',
    'PointHead': 'no 2-D convolution to replace: Conv1d layers on sampled '
    'points (PointRend)',
    'SegmenterMaskTransformerHead': 'no convolution to replace: a '
    'transformer with linear layers on tokens',
    'SideAdapterCLIPHead': 'open-vocabulary mask classification on CLIP '
    'features: its forward takes images, CLIP features and text embeddings; '
    'its only convs are the side network\'s patch embedding and 1x1 '
    'projections of CLIP features, no decoder conv before a classifier',
}
COMPILED_OPS = ('CCHead', 'PSAHead')


def head_cfg(head_type: str, moe: Optional[dict] = None) -> dict:
    """The config of ``head_type``'s case, wrapped if ``moe`` is given."""
    case = CASES[head_type]
    cfg = dict(type=head_type, **copy.deepcopy(case.cfg))
    if not case.plain:
        cfg.setdefault('num_classes', NUM_CLASSES)
        cfg.setdefault('norm_cfg', BN)
    if moe is not None:
        cfg = dict(cfg, type='PatchMoEHead', head_type=head_type, moe=moe)
    return cfg


def build_head(head_type: str, moe: Optional[dict] = None):
    """The head of ``head_type``'s case (wrapped if ``moe`` is given)."""
    return MODELS.build(head_cfg(head_type, moe))
