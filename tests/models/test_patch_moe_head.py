"""PatchMoEHead: default targets, stock keys, losses (also of cascade heads),
upcycling, errors, and the OCRNet MoE config trained on street scenes."""
import copy
import inspect
import json
import logging
import math
import pathlib
import pickle
import time

import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint, save_checkpoint
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from moe_seg_plugin.models.heads.patch_moe_head import PatchMoEHead
from moe_seg_plugin.moe import PatchConvMoE

# Generated street scenes and fast run settings of the end-to-end tests.
from street_runs import fast_options  # noqa: I100

ROOT = pathlib.Path(__file__).resolve().parents[2]

BN = dict(type='BN')
NUM_CLASSES = 5


def _maps(*shapes):
    return [torch.randn(2, c, s, s) for c, s in shapes]


# head config, inputs, default target
HEADS = {
    'DepthwiseSeparableASPPHead': (
        dict(in_channels=32, in_index=1, channels=16, dilations=(1, 2),
             c1_in_channels=8, c1_channels=4),
        lambda: _maps((8, 24), (32, 12)), 'sep_bottleneck.1'),
    'ASPPHead': (dict(in_channels=32, channels=16, dilations=(1, 2)),
                 lambda: _maps((32, 12)), 'bottleneck'),
    'PSPHead': (dict(in_channels=32, channels=16, pool_scales=(1, 2)),
                lambda: _maps((32, 12)), 'bottleneck'),
    'LRASPPHead': (
        dict(in_channels=(8, 8, 32), in_index=(0, 1, 2), channels=16,
             input_transform='multiple_select', branch_channels=(4, 4)),
        lambda: _maps((8, 100), (8, 50), (32, 50)), 'conv_ups.conv_up0'),
    'FCNHead': (dict(in_channels=32, channels=16, num_convs=2,
                     concat_input=False), lambda: _maps((32, 12)), 'convs.1'),
}


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _cfg(head_type, moe=None, **extra):
    kwargs, _, _ = HEADS[head_type]
    cfg = dict(type=head_type, num_classes=NUM_CLASSES, norm_cfg=BN,
               **dict(kwargs, **extra))
    if moe is not None:
        cfg = dict(cfg, type='PatchMoEHead', head_type=head_type, moe=moe)
    return cfg


def _samples(size):
    samples = []
    for _ in range(2):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, NUM_CLASSES, (1, size, size)))
        sample.set_metainfo(dict(img_shape=(size, size)))
        samples.append(sample)
    return samples


def _without(keys, prefix):
    return {k for k in keys if not k.startswith(prefix + '.')}


@pytest.mark.parametrize('head_type', sorted(HEADS))
def test_wrapper_per_head(head_type):
    _, inputs_fn, target = HEADS[head_type]
    dense = MODELS.build(_cfg(head_type))
    moe = MODELS.build(
        _cfg(head_type, moe=dict(num_experts=4, top_k=2,
                                 balance_loss=dict(type='MoESwitchLoss'))))
    assert isinstance(moe, type(dense))
    assert moe.moe_target == target
    layer = moe.get_submodule(target)
    assert isinstance(layer, PatchConvMoE)
    # Every key but the replaced layer's is the stock head's.
    assert _without(moe.state_dict(), target) == _without(
        dense.state_dict(), target)
    assert any(k.startswith(target + '.experts.3.') for k in moe.state_dict())
    # Behaves like the wrapped head towards the segmentor.
    for name in ('num_classes', 'out_channels', 'align_corners', 'threshold'):
        assert getattr(moe, name) == getattr(dense, name)
    inputs = inputs_fn()
    moe.train()
    out = moe(inputs)
    assert isinstance(out, torch.Tensor)
    assert out.shape == dense(inputs).shape
    losses = moe.loss(inputs, _samples(48), dict())
    assert {'loss_ce', 'loss_moe_switch', 'moe_usage_entropy',
            'moe_dominant_share'} <= set(losses)
    assert not any('loss' in k for k in losses if k.startswith('moe_'))
    assert 0.25 <= losses['moe_dominant_share'] <= 1


def test_classifier_as_target():
    head = MODELS.build(_cfg('FCNHead', moe=dict(target='conv_seg',
                                                 num_experts=3)))
    assert isinstance(head.conv_seg, PatchConvMoE)
    head.init_weights()
    # The head's Normal(0.01) init of its classifier must not flatten the
    # gate's batch norm.
    assert torch.equal(head.conv_seg.gate.convs[1].weight, torch.ones(8))
    out = head(HEADS['FCNHead'][1]())
    assert out.shape[1] == NUM_CLASSES


def test_fcn_concat_input_default_target():
    head = MODELS.build(_cfg('FCNHead', moe={}, concat_input=True))
    assert head.moe_target == 'conv_cat'


def test_copies_and_pickles():
    head = MODELS.build(_cfg('PSPHead', moe=dict(num_experts=2)))
    head(HEADS['PSPHead'][1]()).sum().backward()
    for clone in (copy.deepcopy(head), pickle.loads(pickle.dumps(head))):
        assert type(clone).__name__ == 'PatchMoEPSPHead'
        assert clone.bottleneck.last_routing is None


@pytest.mark.parametrize('init,equal', [('copy', True), ('random', False)])
def test_upcycling_from_dense_checkpoint(tmp_path, caplog, init, equal):
    dense = MODELS.build(_cfg('PSPHead'))
    with torch.no_grad():
        for p in dense.parameters():
            p.uniform_(-1, 1)
    path = str(tmp_path / 'dense.pth')
    save_checkpoint(dense.state_dict(), path)
    moe = MODELS.build(
        _cfg('PSPHead', moe=dict(num_experts=3, expert_init=init,
                                 init_noise=0.01, num_shared_experts=1)))
    with caplog.at_level(logging.INFO, logger='moe_seg_plugin'):
        load_checkpoint(moe, path, map_location='cpu')
    reference = dense.bottleneck.conv.weight
    experts = list(moe.bottleneck.experts) + list(
        moe.bottleneck.shared_experts)
    for expert in experts:
        gap = (expert.conv.weight - reference).abs().max().item()
        if equal:
            assert 0 < gap < 0.1 * reference.abs().max().item()
            assert torch.equal(expert.bn.running_mean,
                               dense.bottleneck.bn.running_mean)
        else:
            assert gap > 0.1
    assert torch.equal(moe.conv_seg.weight, dense.conv_seg.weight)
    message = 'upcycled' if equal else 'not used'
    assert any(message in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize('cfg,match', [
    (dict(type='PatchMoEHead', head_type='NoSuchHead', moe={}),
     r"decode_head.head_type: 'NoSuchHead' is not a registered decode head; "
     r"allowed: \[.*'PSPHead'"),
    (dict(type='PatchMoEHead', moe={}), 'PatchMoEHead needs the decode head'),
    (_cfg('PSPHead', moe=dict(target='bottlenek')),
     r"decode_head.moe.target: no module at 'bottlenek' in PatchMoEPSPHead; "
     r"nearest conv-like paths: \['bottleneck'"),
    (_cfg('PSPHead', moe=dict(target='psp_modules')),
     r"'psp_modules' is a PPM, not a conv-like module; .*'conv_seg'"),
    (_cfg('PSPHead', moe=dict(experts=4)),
     r"decode_head.moe: unknown setting\(s\) \['experts'\]; allowed: "),
    (_cfg('PSPHead', moe=dict(top_k=9)),
     'decode_head.moe: top_k must be an int from 1 to num_experts'),
    (_cfg('FCNHead', moe={}, num_convs=0, concat_input=False, channels=32),
     r"decode_head.moe.target: FCNHead has no conv before the classifier"
     r".*conv-like paths: \['conv_seg'\]"),
])
def test_bad_head_configs(cfg, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(cfg)


def test_upcycling_message_reaches_the_mmengine_log(tmp_path):
    from mmengine.logging import MMLogger
    log_file = tmp_path / 'run.log'
    MMLogger.get_instance('upcycle_test', log_file=str(log_file))
    dense = MODELS.build(_cfg('PSPHead'))
    path = str(tmp_path / 'dense.pth')
    save_checkpoint(dense.state_dict(), path)
    moe = MODELS.build(_cfg('PSPHead', moe=dict(num_experts=2,
                                                expert_init='copy')))
    load_checkpoint(moe, path, map_location='cpu')
    assert "PatchConvMoE 'bottleneck': upcycled" in log_file.read_text()


def _ocr(moe=None):
    cfg = dict(type='OCRHead', in_channels=32, channels=16, ocr_channels=8,
               num_classes=NUM_CLASSES, norm_cfg=BN)
    if moe is not None:
        cfg = dict(cfg, type='PatchMoEHead', head_type='OCRHead', moe=moe)
    return MODELS.build(cfg)


def test_cascade_head_loss_takes_prev_output():
    head = _ocr(dict(num_experts=4, balance_loss=dict(type='MoESwitchLoss')))
    assert head.moe_target == 'object_context_block.bottleneck'
    head.train()
    inputs = _maps((32, 12))
    prev_output = torch.randn(2, NUM_CLASSES, 12, 12)
    losses = head.loss(inputs, prev_output, _samples(48), dict())
    assert {'loss_ce', 'loss_moe_switch', 'moe_usage_entropy'} <= set(losses)
    # Keyword arguments reach the wrapped head too.
    losses = head.loss(inputs, prev_output=prev_output,
                       batch_data_samples=_samples(48), train_cfg=dict())
    assert 'loss_moe_switch' in losses


OCR_CONFIG = ('configs/ocrnet/'
              'patchmoe_ocrnet_r18-d8_1xb4-1k_street-cityscapes-256x256.py')


@pytest.mark.slow
def test_ocrnet_moe_config_trains_on_street_data(tool, street_root, tmp_path,
                                                 monkeypatch):
    """The cascade MoE config trains two steps and validates through
    tools/train.py's Runner, on generated street scenes."""
    monkeypatch.chdir(ROOT)
    train_tool = tool('train')
    work = tmp_path / 'work'
    args = train_tool.parse_args([
        OCR_CONFIG, '--work-dir', str(work), '--cfg-options',
        *fast_options(street_root, max_iters=2),
        # MMEngine reuses a Visualizer by name: an earlier test's would
        # write its scalars elsewhere.
        f'visualizer.name=ocrnet_test_{time.time_ns()}'
    ])
    runner = train_tool.build_runner(args)
    runner.train()
    assert (work / 'iter_2.pth').is_file()
    heads = runner.model.decode_head
    assert type(heads[1]).__name__ == 'PatchMoEOCRHead'
    assert isinstance(heads[1].object_context_block.bottleneck,
                      PatchConvMoE)
    logs = (work / runner.timestamp / 'vis_data' / 'scalars.json')
    records = [json.loads(line) for line in logs.read_text().splitlines()]
    trained = [r for r in records if 'decode_1.loss_moe_switch' in r]
    assert trained and 'decode_0.loss_ce' in trained[-1]
    assert all(math.isfinite(r['loss']) for r in trained)
    assert any('mIoU' in r for r in records)


def test_docstring_names_every_patch_conv_moe_setting():
    """``decode_head.moe`` takes PatchConvMoE's arguments: the wrapper's
    docstring lists each one."""
    settings = inspect.signature(PatchConvMoE.__init__).parameters
    doc = ' '.join(PatchMoEHead.__doc__.split())
    missing = [name for name in settings
               if name not in ('self', 'module') and name not in doc]
    assert not missing, f'PatchMoEHead docstring misses {missing}'
