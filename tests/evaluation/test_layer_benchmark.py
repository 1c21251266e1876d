"""The layer benchmark's library (evaluation/layer_benchmark.py and
layer_tables.py): scope names, cells, rows and targets from known
timings."""
import pytest
import torch
from torch import nn

from moe_seg_plugin.evaluation import layer_tables as tables
from moe_seg_plugin.evaluation.layer_benchmark import (LayerSweep,
                                                       layer_rows,
                                                       naive_cells,
                                                       scope_settings,
                                                       timed_cell)
from moe_seg_plugin.moe import PatchConvMoE


def test_low_rank_scope_names_give_the_layer_settings():
    assert scope_settings('lowrank32') == dict(expert_scope='conv',
                                               expert_rank=32)
    assert scope_settings('conv') == dict(expert_scope='conv')


@pytest.mark.parametrize('change,message', [
    (dict(archs=['segformer']), "--archs: unknown ['segformer']"),
    (dict(top_k=[4], experts=[2]), '--top-k: 4 exceeds'),
    (dict(scopes=['lowrank0']), "--scopes: unknown ['lowrank0']"),
    (dict(modes=['train']), "--modes: unknown ['train']"),
    (dict(repeats=0), '--repeats: must be >= 1')])
def test_bad_settings_name_their_option(change, message):
    with pytest.raises(ValueError, match=message.replace('[', r'\[')):
        LayerSweep(**change).check()


def _layer() -> PatchConvMoE:
    return PatchConvMoE(nn.Conv2d(2, 2, 3, padding=1), num_experts=4,
                        top_k=1, grid=(2, 2))


def test_a_cell_sets_k_and_dispatch_and_clears_gradients_untimed():
    layer = _layer().train()
    x = torch.randn(1, 2, 8, 8, requires_grad=True)
    run, setup = timed_cell(lambda: layer(x), layer, x, True, 2, 'indexed')
    x.grad = torch.ones_like(x)
    setup()
    assert (layer.top_k, layer.dispatch, x.grad) == (2, 'indexed', None)
    with torch.no_grad():  # as compare_latency calls it
        run()
    assert x.grad is not None and layer.gate is not None
    grads = [p.grad for p in layer.parameters() if p.grad is not None]
    assert grads  # the backward ran
    setup()
    assert all(p.grad is None for p in layer.parameters())


def test_a_forward_cell_computes_no_gradients():
    layer = _layer().eval()
    x = torch.randn(1, 2, 8, 8)
    run, _ = timed_cell(lambda: layer(x), layer, x, False)
    run()
    assert all(p.grad is None for p in layer.parameters())


def test_rows_are_the_ratios_of_the_medians():
    sweep = LayerSweep(experts=[2, 4], top_k=[1], dispatches=['auto'],
                       scopes=['module'])
    ms = {'dense': 10.0, 'moe module N=2 k=1 auto': 20.0,
          'moe module N=4 k=1 auto': 25.0, 'naive N=2': 50.0}
    two, four = layer_rows(ms, sweep, skipped=[4], naive_scope='module')
    assert two == dict(experts=2, top_k=1, dispatch='auto', scope='module',
                       dense_ms=10.0, moe_ms=20.0, naive_ms=50.0,
                       naive_skipped=False, moe_over_dense=2.0,
                       naive_over_moe=2.5)
    assert (four['moe_over_dense'], four['naive_ms']) == (2.5, None)
    assert four['naive_skipped'] and four['naive_over_moe'] is None


def test_naive_cells_over_the_budget_are_skipped_but_the_always_ones():
    layers = {('module', n): _layer() for n in (2, 4, 8)}
    sweep = LayerSweep(experts=[2, 4, 8], top_k=[1], naive_budget=3.0,
                       naive_always=[8])
    x = torch.randn(1, 2, 8, 8)
    # 1 s per dense call: N experts estimated at 1.2 * N s.
    cells, skipped, scope = naive_cells(layers, sweep, x, False, 1.0)
    assert sorted(cells) == ['naive N=2', 'naive N=8'] and skipped == [4]
    assert scope == 'module'


def _row(scope='module', dense_ms=20.0, moe_ms=26.0, **extra):
    row = dict(experts=8, top_k=2, dense_ms=dense_ms, moe_ms=moe_ms,
               moe_over_dense=moe_ms / dense_ms, scope=scope)
    row.update(extra)
    return row


def test_the_merged_target_is_tighter():
    assert tables.over_dense([_row('module')]) == '1.30 PASS'
    assert tables.over_dense([_row('conv')]) == '1.30 FAIL'
    assert tables.over_dense([_row('lowrank16')]) == '1.30 FAIL'


@pytest.mark.parametrize('dense_ms,moe_ms,want', [
    (20.0, 49.0, '2.45 PASS'), (20.0, 52.0, '2.60 FAIL'),
    (4.0, 16.0, '4.00 (dense < 10 ms)')])
def test_moe_over_dense_target_applies_from_10_ms(dense_ms, moe_ms, want):
    rows = [_row(dense_ms=dense_ms, moe_ms=moe_ms)]
    assert tables.over_dense(rows) == want
    assert tables.over_dense(rows[:0]) == 'not measured'


def test_scaling_and_speedup_from_known_rows():
    rows = [dict(experts=n, top_k=k, moe_ms=ms, naive_over_moe=3.5)
            for n, k, ms in ((4, 2, 10.0), (8, 2, 11.0), (32, 2, 11.5),
                             (4, 1, 8.0))]
    assert tables.scaling(rows, 2) == pytest.approx(1.15)
    assert tables.scaling(rows, 1) is None  # no N=32 at k=1
    assert tables.speedup(rows) == 3.5
    assert tables.verdict(1.15, True) == '1.15 PASS'
