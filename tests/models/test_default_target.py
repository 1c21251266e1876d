"""The default MoE target: the last conv a head runs before its classifier,
found by running the head once (moe_seg_plugin/models/heads/default_target).
"""
import copy

import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from moe_seg_plugin.models.heads.default_target import (DEFAULT_TARGETS,
                                                        conv_units,
                                                        default_target,
                                                        probe_target)
from moe_seg_plugin.moe import PatchConvMoE

# The heads' settings and inputs: the every-decode-head harness.
from decode_head_cases import CASES, build_head, head_cfg

#: The last conv each head's forward runs before its classifier, read from
#: the head's source (MMSeg 1.2.2) for the settings of its case.
EXPECTED = {
    # APNB: bottleneck(cat(context, feats)), a 1x1 ConvModule, then cls_seg.
    'ANNHead': 'context.bottleneck',
    # cat(x, ACM outputs) -> bottleneck -> cls_seg.
    'APCHead': 'bottleneck',
    # cat(image pool, ASPP branches) -> bottleneck -> cls_seg.
    'ASPPHead': 'bottleneck',
    # PAM branch, CAM branch, cls_seg(pam_feat + cam_feat): the CAM branch's
    # out conv runs last (pam/cam_conv_seg are classifiers).
    'DAHead': 'cam_out_conv',
    # Eval: head = (ConvModule(norm, act, conv), BN, ReLU) -> cls_seg; the
    # pre-activation ConvModule is not conv-like, its conv is.
    'DDRHead': 'head.0.conv',
    # cat(x, DCM outputs) -> bottleneck -> cls_seg.
    'DMHead': 'bottleneck',
    # convs.0, DNL block, convs.1, conv_cat (concat_input) -> cls_seg.
    'DNLHead': 'conv_cat',
    # fusion blocks -> project (3x3) -> cls_seg (DEFAULT_TARGETS).
    'DPTHead': 'project',
    # bottleneck, c1_bottleneck, sep_bottleneck (two separable convs) ->
    # cls_seg (DEFAULT_TARGETS).
    'DepthwiseSeparableASPPHead': 'sep_bottleneck.1',
    # convs (two separable convs), no concat -> cls_seg.
    'DepthwiseSeparableFCNHead': 'convs.1',
    # ema_in_conv, EMA, ema_out_conv, bottleneck, conv_cat -> cls_seg.
    'EMAHead': 'conv_cat',
    # bottleneck 5.1's extension branch (DEFAULT_TARGETS).
    'ENetHead': 'bottleneck.ext',
    # bottleneck -> EncModule (x * (1 + gains)) -> cls_seg (DEFAULT_TARGETS).
    'EncHead': 'bottleneck',
    # convs.0, convs.1, conv_cat -> cls_seg.
    'FCNHead': 'conv_cat',
    # Scale heads 0..3 summed -> cls_seg; the stride-32 head's third conv
    # runs last.
    'FPNHead': 'scale_heads.3.4',
    # convs.0, GC block, convs.1, conv_cat -> cls_seg.
    'GCHead': 'conv_cat',
    # in_conv, global and local relations, out_conv -> cls_seg.
    'ISAHead': 'out_conv',
    # The generator FCNHead's features -> its conv_seg (the kernels the
    # update heads refine): its conv_cat.
    'IterativeDecodeHead': 'kernel_generate_head.conv_cat',
    # Branches from coarse to fine: conv_up1, then conv_up0 -> cls_seg.
    'LRASPPHead': 'conv_ups.conv_up0',
    # squeeze, hamburger, align -> cls_seg; with group norm the ConvModule
    # is not conv-like, its conv is.
    'LightHamHead': 'align.conv',
    # convs.0, non-local block, convs.1, conv_cat -> cls_seg.
    'NLHead': 'conv_cat',
    # bottleneck, gather, object context block (ends in its 1x1
    # bottleneck) -> cls_seg.
    'OCRHead': 'object_context_block.bottleneck',
    # Eval: i_head = ConvModule(norm, act, conv), BN, ReLU, then cls_seg.
    'PIDHead': 'i_head.conv.conv',
    # cat(x, PPM) -> bottleneck -> cls_seg.
    'PSPHead': 'bottleneck',
    # Four (conv, conv, upsample) branches concatenated -> cls_seg; the last
    # branch's second conv runs last.
    'SETRMLAHead': 'up_convs.3.1',
    # LN, then (conv, upsample) x num_convs -> cls_seg.
    'SETRUPHead': 'up_convs.1.0',
    # An FCNHead with num_convs=1, no concat: convs.0 -> cls_seg.
    'STDCHead': 'convs.0',
    # 1x1 convs per level, fusion_conv -> cls_seg.
    'SegformerHead': 'fusion_conv',
    # Laterals, PSP, FPN convs, fpn_bottleneck -> cls_seg.
    'UPerHead': 'fpn_bottleneck',
    # No conv_seg: decoder, then depth_pred_layer (3x3, ReLU, 3x3 predictor).
    'VPDDepthHead': 'depth_pred_layer.0',
}

#: What the generic rule gives for the heads set by hand, and so why they
#: are: a different conv, or no answer (the probe cannot run them).
RULE_FOR_TABLE_HEADS = {
    'ENetHead': 'bottleneck.ext.2',
    'EncHead': 'enc_module.encoding_project',
    'DPTHead': 'could not run DPTHead on probe inputs',
    'DepthwiseSeparableASPPHead': 'could not run DepthwiseSeparableASPPHead',
}


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def test_every_covered_head_has_an_expected_target():
    assert set(EXPECTED) == set(CASES)
    assert set(RULE_FOR_TABLE_HEADS) == set(DEFAULT_TARGETS)


@pytest.mark.parametrize('head_type', sorted(EXPECTED))
def test_default_target(head_type):
    head = build_head(head_type)
    assert default_target(head) == EXPECTED[head_type]
    if head_type in DEFAULT_TARGETS:
        return
    # Found by the rule, not by a table.
    assert probe_target(head) == EXPECTED[head_type]
    wrapped = build_head(head_type, moe=dict(num_experts=2))
    assert wrapped.moe_target == EXPECTED[head_type]
    assert isinstance(wrapped.get_submodule(EXPECTED[head_type]),
                      PatchConvMoE)


@pytest.mark.parametrize('head_type', sorted(RULE_FOR_TABLE_HEADS))
def test_why_table_heads_are_set_by_hand(head_type):
    head = build_head(head_type)
    rule = RULE_FOR_TABLE_HEADS[head_type]
    if rule.startswith('could not run'):
        with pytest.raises(ValueError, match='decode_head.moe.target: ' +
                           rule):
            probe_target(head)
    else:
        assert probe_target(head) == rule


def test_former_table_heads_get_the_same_targets_from_the_rule():
    cases = [
        (dict(type='FCNHead', num_convs=1, concat_input=False), 'convs.0'),
        (dict(type='FCNHead', num_convs=3, concat_input=False), 'convs.2'),
        (dict(type='FCNHead', num_convs=2, concat_input=True), 'conv_cat'),
        (dict(type='FCNHead', num_convs=0, concat_input=True,
              channels=16), 'conv_cat'),
    ]
    for extra, target in cases:
        cfg = dict(dict(in_channels=16, channels=8, num_classes=3), **extra)
        assert probe_target(MODELS.build(cfg)) == target, extra


@pytest.mark.parametrize('cfg,paths', [
    (dict(type='FCNHead', in_channels=16, channels=16, num_convs=0,
          concat_input=False, num_classes=3), r"\['conv_seg'\]"),
    (dict(type='PointHead', in_channels=[16], in_index=[0], channels=8,
          num_fcs=3, coarse_pred_each_layer=True, dropout_ratio=-1,
          num_classes=3), r'\[\]'),
    (dict(type='SegmenterMaskTransformerHead', in_channels=16, channels=16,
          num_classes=3, num_layers=1, num_heads=2, embed_dims=16), r'\[\]'),
])
def test_no_conv_before_the_classifier(cfg, paths):
    name = cfg['type']
    match = (rf'decode_head.moe.target: {name} has no conv before the '
             rf'classifier.*conv-like paths: {paths}')
    with pytest.raises(ValueError, match=match):
        default_target(MODELS.build(cfg))
    wrapped = dict(cfg, type='PatchMoEHead', head_type=name, moe={})
    with pytest.raises(ValueError, match=match):
        MODELS.build(wrapped)


def _state(head):
    return {k: v.clone() for k, v in head.state_dict().items()}


def test_probe_leaves_the_head_as_it_was():
    cfg = head_cfg('LightHamHead')
    # Without random bases, the first forward registers a `bases` buffer.
    cfg['ham_kwargs'] = dict(cfg['ham_kwargs'], rand_init=False)
    cfg['norm_cfg'] = dict(type='BN')
    head = MODELS.build(cfg)
    head.train()
    head.squeeze.eval()  # a submodule's own mode must survive too
    with torch.no_grad():
        head.align.bn.running_mean.uniform_()
    before = _state(head)
    modes = {name: m.training for name, m in head.named_modules()}
    rng = torch.get_rng_state()
    assert probe_target(head) == 'align'
    after = head.state_dict()
    assert set(after) == set(before)
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    assert {n: m.training for n, m in head.named_modules()} == modes
    assert torch.equal(torch.get_rng_state(), rng)
    assert not any(m._forward_hooks for m in head.modules())


def test_probe_runs_in_eval_without_grad():
    head = build_head('PSPHead')
    head.train()
    seen = []
    head.bottleneck.register_forward_hook(
        lambda m, *_: seen.append((m.training, torch.is_grad_enabled())))
    probe_target(head)
    assert seen == [(False, False)]
    assert head.training


def test_probe_inputs_are_small():
    # A stock-sized UPerNet head (Swin-T channels); the probe's maps are
    # 2x2, one image.
    head = MODELS.build(
        dict(type='UPerHead', in_channels=[96, 192, 384, 768],
             in_index=[0, 1, 2, 3], channels=512, pool_scales=(1, 2, 3, 6),
             num_classes=19))
    sizes = []
    head.lateral_convs[0].register_forward_hook(
        lambda m, args, out: sizes.append(tuple(args[0].shape)))
    assert probe_target(head) == 'fpn_bottleneck'
    assert sizes == [(1, 96, 2, 2)]


def test_probe_maps_are_not_smaller_than_a_fixed_pooling_window():
    cfg = copy.deepcopy(CASES['LRASPPHead'].cfg)
    head = MODELS.build(dict(type='LRASPPHead', num_classes=3, **cfg))
    assert head.image_pool[0].kernel_size == 49
    assert probe_target(head) == 'conv_ups.conv_up0'


def test_units_are_single_convolutions():
    # A conv-like Sequential of several blocks is not a unit, its members
    # are; one written out (conv, BN, ReLU) is; one holding a single block
    # alone gives way to that block.
    head = build_head('VPDDepthHead')
    units = conv_units(head)
    assert 'decoder.conv_layers' in units
    assert 'decoder.conv_layers.0' not in units
    assert {'depth_pred_layer.0', 'depth_pred_layer.2'} <= set(units)
    assert 'depth_pred_layer' not in units
    fcn = MODELS.build(dict(type='FCNHead', in_channels=16, channels=8,
                            num_convs=1, concat_input=False, num_classes=3))
    assert conv_units(fcn) == ['conv_seg', 'convs.0']


def test_explicit_target_skips_the_probe(monkeypatch):
    import moe_seg_plugin.models.heads.patch_moe_head as patch_moe_head

    def fail(*_):
        raise AssertionError('probed')

    monkeypatch.setattr(patch_moe_head, 'default_target', fail)
    head = build_head('UPerHead', moe=dict(target='fpn_convs.0'))
    assert head.moe_target == 'fpn_convs.0'
