"""tools/analysis_tools/eval_fixed_expert.py on generated scenes and a fresh
checkpoint, and the layer/expert selection behind it."""
import argparse
import json
import subprocess
import sys

import pytest
from mmcv.cnn import ConvModule
from mmengine.config import DictAction
from torch import nn

from moe_seg_plugin.evaluation.fixed_expert import (expert_indices, forced,
                                                    select_layers)
from moe_seg_plugin.moe import PatchConvMoE

from street_runs import MOE_CONFIG, ROOT, fast_options, save_fresh_checkpoint  # noqa: I100

TOOL = 'tools/analysis_tools/eval_fixed_expert.py'
ONE_EXPERT = ['model.decode_head.moe.num_experts=1',
              'model.decode_head.moe.top_k=1']


def _run(args, expect=0):
    result = subprocess.run([sys.executable] + args, cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == expect, (result.stdout[-3000:] +
                                         result.stderr[-5000:])
    return result


def _fixed_expert(checkpoint, out, options, *extra):
    result = _run([TOOL, MOE_CONFIG, checkpoint, '--work-dir', str(out),
                   *extra, '--cfg-options', *options])
    data = json.loads((out / 'fixed_expert.json').read_text())
    return result, data, {row['setting']: row for row in data['rows']}


def _as_dict(options):
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    return parser.parse_args(['--o'] + options).o


def _reference_runs(checkpoint, options, work_dir, expert):
    """runner.test() of the checkpoint as tools/test.py builds it, gated,
    then with forced_expert set by hand on every PatchConvMoE layer (no
    fixed-expert code involved); returns both metric dicts."""
    from moe_seg_plugin.engine.run_setup import runner_from_cfg, test_config
    from moe_seg_plugin.models.injection import moe_layers
    cfg = test_config(str(ROOT / MOE_CONFIG), checkpoint, _as_dict(options),
                      str(work_dir))
    runner = runner_from_cfg(cfg)
    gated = runner.test()
    for layer in moe_layers(runner.model).values():
        layer.forced_expert = expert
    return gated, runner.test()


@pytest.mark.slow
def test_gated_and_forced_rows_match_independent_runs(street_root,
                                                      fresh_checkpoint,
                                                      tmp_path):
    options = fast_options(street_root)
    result, data, rows = _fixed_expert(fresh_checkpoint, tmp_path / 'fe',
                                       options, '--experts', '3')
    assert list(rows) == ['gated', 'expert 3']
    assert data['layers'] == {
        'decode_head.convs.0': dict(num_experts=8, top_k=2)
    }
    assert len(data['classes']) == 19 and data['classes'][0] == 'road'
    table = (tmp_path / 'fe' / 'fixed_expert.md').read_text()
    assert '| metric (%) | gated | expert 3 |' in table
    assert '| IoU road |' in table and table.count('\n| IoU ') == 19
    assert '| metric (%) | gated | expert 3 |' in result.stdout
    for row in rows.values():  # per-class IoU is IoUMetric's: mean = mIoU
        ious = [v for v in row['IoU'].values() if v is not None]
        assert abs(sum(ious) / len(ious) - row['mIoU']) < 0.01

    # The gated row is what a test run of the checkpoint reports, a forced
    # row what the model with forced_expert set by hand reports; forcing
    # changes the predictions of this 8-expert model.
    gated, hand_forced = _reference_runs(fresh_checkpoint, options,
                                         tmp_path / 'reference', 3)
    assert rows['gated']['mIoU'] == round(float(gated['mIoU']), 2)
    assert rows['gated']['aAcc'] == round(float(gated['aAcc']), 2)
    assert rows['expert 3']['mIoU'] == round(float(hand_forced['mIoU']), 2)
    assert rows['expert 3']['aAcc'] == round(float(hand_forced['aAcc']), 2)
    assert rows['expert 3'] != rows['gated']


@pytest.mark.slow
def test_one_expert_gated_equals_forced(street_root, tmp_path):
    # A one-expert model needs a one-expert checkpoint: an 8-expert one is
    # refused (the layer names both counts).
    checkpoint = save_fresh_checkpoint(tmp_path / 'one.pth',
                                       _as_dict(ONE_EXPERT))
    _, data, rows = _fixed_expert(checkpoint, tmp_path / 'fe',
                                  fast_options(street_root) + ONE_EXPERT)
    assert list(rows) == ['gated', 'expert 0']
    assert data['layers']['decode_head.convs.0']['num_experts'] == 1
    gated, forced_row = rows['gated'], rows['expert 0']
    for key in ('mIoU', 'aAcc', 'IoU'):
        assert gated[key] == forced_row[key]


@pytest.mark.slow
def test_unknown_layer_is_a_clear_error(street_root, fresh_checkpoint,
                                        tmp_path):
    result = _run([TOOL, MOE_CONFIG, fresh_checkpoint, '--work-dir',
                   str(tmp_path), '--layer', 'decode_head.conv_seg',
                   '--cfg-options'] + fast_options(street_root), expect=2)
    assert "['decode_head.conv_seg'] is not a PatchConvMoE layer" in \
        result.stderr
    assert "MoE layers: ['decode_head.convs.0']" in result.stderr
    assert 'Traceback' not in result.stderr
    assert not (tmp_path / 'fixed_expert.json').exists()


def test_help_runs():
    result = _run([TOOL, '--help'])
    for option in ('--experts', '--layer', '--out-dir', '--cfg-options'):
        assert option in result.stdout


class _TwoLayers(nn.Module):
    """A toy model with MoE layers of 4 and 2 experts and a plain conv."""

    def __init__(self):
        super().__init__()
        self.first = PatchConvMoE(ConvModule(3, 4, 3, padding=1),
                                  num_experts=4, top_k=2)
        self.plain = nn.Conv2d(4, 4, 1)
        self.second = PatchConvMoE(nn.Conv2d(4, 4, 3, padding=1),
                                   num_experts=2, top_k=1)


def test_layers_and_experts_are_checked():
    model = _TwoLayers()
    assert list(select_layers(model)) == ['first', 'second']
    assert list(select_layers(model, ['second'])) == ['second']
    with pytest.raises(ValueError, match=r"\['plain'\] is not a PatchConvMoE"
                       r".*its MoE layers: \['first', 'second'\]"):
        select_layers(model, ['plain'])
    with pytest.raises(ValueError, match='has no PatchConvMoE layer'):
        select_layers(nn.Sequential(nn.Conv2d(3, 3, 1)))

    both = select_layers(model)
    assert expert_indices(both) == [0, 1]  # the range all layers have
    assert expert_indices(select_layers(model, ['first'])) == [0, 1, 2, 3]
    assert expert_indices(both, [1, 0]) == [1, 0]
    with pytest.raises(ValueError, match=r"expert 3 does not exist in layer "
                       r"'second' \(2 experts: 0 to 1\)"):
        expert_indices(both, [3])


def test_forcing_is_undone_even_on_error():
    layers = select_layers(_TwoLayers())
    with pytest.raises(KeyError):
        with forced(layers, 1):
            assert [m.forced_expert for m in layers.values()] == [1, 1]
            raise KeyError('test run failed')
    assert [m.forced_expert for m in layers.values()] == [None, None]


def test_per_class_metric_reuses_iou_metric():
    import numpy as np
    import torch
    from mmseg.evaluation import IoUMetric

    from moe_seg_plugin.evaluation.fixed_expert import PerClassIoUMetric
    pred = torch.tensor([[0, 0, 1], [1, 2, 2]])
    label = torch.tensor([[0, 1, 1], [1, 2, 255]])
    meta = dict(classes=('a', 'b', 'c', 'd'))
    results = []
    for metric_type in (IoUMetric, PerClassIoUMetric):
        metric = metric_type()
        metric.dataset_meta = meta
        metric.process({}, [dict(pred_sem_seg=dict(data=pred),
                                 gt_sem_seg=dict(data=label))])
        results.append(metric.evaluate(1))
    plain, per_class = results
    # a: 1 of 2 (one 0 predicted where 1 is); b: 2 of 3; c: 1 of 1 (the
    # second 2 is on an ignored pixel); d: in neither -> NaN
    assert per_class['IoU.a'] == 50.0
    assert per_class['IoU.b'] == 66.67
    assert per_class['IoU.c'] == 100.0
    assert np.isnan(per_class['IoU.d'])
    assert {k: v for k, v in per_class.items()
            if not k.startswith('IoU.')} == plain
