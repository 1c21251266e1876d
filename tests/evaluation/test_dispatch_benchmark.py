"""The dispatch benchmark's library (evaluation/dispatch_benchmark.py)."""
import pytest
import torch

from moe_seg_plugin.evaluation import dispatch_benchmark as bench
from moe_seg_plugin.moe import PatchConvMoE


def test_a_row_shows_each_layer_over_k_dense_layers():
    row = dict(experts=4, mode='fwd+bwd', dense=2.0, new=3.0, old=5.0)
    assert bench.table_row(row, ['new', 'old']) == (
        '| 4 | fwd+bwd | 2.0 | 3.0 | 1.500 | 5.0 | 2.500 |')
    header, rule = bench.table_header(['new', 'old'])
    assert header.count('|') == rule.count('|') == 8


def test_rows_time_every_mode_of_every_n_in_the_same_rounds():
    import moe_seg_plugin.moe as core
    module = bench.expert_module(4)
    x = torch.randn(1, 4, 12, 12)
    cores = {'new': (core, {}), 'capacity': (core, dict(capacity_factor=1))}
    rows = list(bench.dispatch_rows(cores, module, x, [2, 4], 2, 1, 'cpu'))
    assert [(r['experts'], r['mode']) for r in rows] == [
        (2, 'forward'), (2, 'fwd+bwd'), (4, 'forward'), (4, 'fwd+bwd')]
    assert all(set(r) == {'experts', 'mode', 'dense', 'new', 'capacity'}
               for r in rows)
    assert all(r[name] > 0 for r in rows for name in cores)


def test_the_harness_layer_is_seeded_and_spread_free():
    import moe_seg_plugin.moe as core
    module = bench.expert_module(4)
    first = bench.build_layer(core, module, 4, 2)
    second = bench.build_layer(core, module, 4, 2, capacity_factor=1.5)
    assert isinstance(first, PatchConvMoE) and first.grid == (3, 3)
    assert second.capacity_factor == 1.5
    assert torch.equal(first.experts[0][0].weight,
                       second.experts[0][0].weight)
    assert not first.gate._forward_hooks


def test_another_checkout_without_a_core_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match='no moe_seg_plugin/moe'):
        bench.load_core(str(tmp_path), 'moe_core_missing')


def test_cells_run_under_the_autocast_asked_for():
    seen = []

    def run():
        seen.append(torch.is_autocast_enabled('cpu')
                    and torch.get_autocast_dtype('cpu'))

    bench.under_autocast(run, 'cpu', torch.bfloat16)()
    bench.under_autocast(run, 'cpu', None)()
    assert seen == [torch.bfloat16, False]
