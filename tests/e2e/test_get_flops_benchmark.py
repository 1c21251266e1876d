"""tools/analysis_tools/get_flops.py, tools/analysis_tools/benchmark.py and tools/benchmarks/benchmark_architectures.py
on the ERFNet street configs at a small input."""
import json
import subprocess
import sys

import pytest

from .conftest import MOE_CONFIG, ROOT

pytestmark = pytest.mark.slow

STOCK_CONFIG = 'configs/erfnet/erfnet_fcn_1xb4-1k_street-cityscapes-256x256.py'
SHAPE = ['--shape', '64', '128']


def _run(args, expect=0):
    result = subprocess.run([sys.executable] + args, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == expect, (result.stdout[-3000:] +
                                         result.stderr[-3000:])
    return result


def _pct(new, old):
    return 100 * (new - old) / old


def test_get_flops_moe_config_against_derived_and_given_stock(tmp_path):
    out = tmp_path / 'flops.json'
    printed = _run(['tools/analysis_tools/get_flops.py', MOE_CONFIG] + SHAPE +
                   ['--out', str(out)]).stdout
    result = json.loads(out.read_text())
    moe, stock, inc = result['model'], result['stock'], result[
        'increase_pct']
    assert result['stock_source'] == 'derived from CONFIG'
    assert moe['params'] > stock['params']
    assert inc['params_pct'] == pytest.approx(
        _pct(moe['params'], stock['params']), rel=1e-12)
    assert inc['flops_pct'] == pytest.approx(
        _pct(moe['flops'], stock['flops']), rel=1e-12)
    assert stock['flops'] < moe['flops'] < moe['all_experts_flops']
    (layer, ) = moe['moe_layers']
    assert layer['path'] == 'decode_head.convs.0'
    assert (layer['num_experts'], layer['top_k'], layer['grid']) == (8, 2,
                                                                    [3, 3])
    # Everything but the replaced conv is the stock model.
    assert moe['params'] - stock['params'] == (layer['params'] -
                                               layer['dense_params'])
    assert moe['flops'] - stock['flops'] == layer['actual'] - layer['dense']
    assert f"{inc['params_pct']:+.2f}" in printed
    assert f"{moe['flops'] / 1e9:.3f}" in printed

    given = tmp_path / 'stock.json'
    _run(['tools/analysis_tools/get_flops.py', STOCK_CONFIG] + SHAPE +
         ['--out', str(given)])
    plain = json.loads(given.read_text())
    assert plain['stock'] is None and plain['model']['moe_layers'] == []
    assert plain['model']['flops'] == stock['flops']
    assert plain['model']['params'] == stock['params']


def test_benchmark_against_a_baseline(fresh_checkpoint, tmp_path):
    out = tmp_path / 'latency.json'
    printed = _run([
        'tools/analysis_tools/benchmark.py', MOE_CONFIG, fresh_checkpoint, '--baseline',
        STOCK_CONFIG, '--warmup', '1', '--repeats', '3', '--device', 'cpu',
        '--out', str(out)
    ] + SHAPE).stdout
    result = json.loads(out.read_text())
    moe, stock = result['latency']['model'], result['latency']['stock']
    assert len(moe['times_ms']) == len(stock['times_ms']) == 3
    assert moe['min_ms'] <= moe['median_ms'] <= moe['max_ms']
    assert result['ratio'] == pytest.approx(
        moe['median_ms'] / stock['median_ms'])
    assert result['shape'] == [64, 128] and result['repeats'] == 3
    assert f"ratio model/stock (medians): {result['ratio']:.3f}" in printed


def test_bad_benchmark_input_is_one_line(tmp_path):
    missing = _run(['tools/analysis_tools/benchmark.py', MOE_CONFIG,
                    str(tmp_path / 'absent.pth')] + SHAPE, expect=2)
    assert 'absent.pth' in missing.stderr
    assert 'Traceback' not in missing.stderr
    no_moe = _run(['tools/analysis_tools/benchmark.py', STOCK_CONFIG, '--vs-stock'] + SHAPE,
                  expect=2)
    assert 'has no MoE wrappers' in no_moe.stderr


def test_architecture_table(tmp_path):
    table, figures = tmp_path / 'table.md', tmp_path / 'table.json'
    _run(['tools/benchmarks/benchmark_architectures.py', '--archs', 'erfnet',
          '--warmup', '0', '--repeats', '2', '--out', str(table), '--json',
          str(figures)] + SHAPE)
    (result, ) = json.loads(figures.read_text())['results']
    rows = [line for line in table.read_text().splitlines()
            if line.startswith('| erfnet |')]
    assert len(rows) == 1
    cells = [cell.strip() for cell in rows[0].split('|')[1:-1]]
    assert cells[1] == f"{result['stock']['params'] / 1e6:.3f}"
    assert cells[3] == f"{result['increase_pct']['params_pct']:+.2f}"
    assert cells[-1].rstrip(' *') == f"{result['ratio']:.3f}"
    assert result['ratio'] == pytest.approx(
        result['latency']['moe']['median_ms'] /
        result['latency']['stock']['median_ms'])


def test_family_table_rows_and_the_values_an_arch_cannot_have(tmp_path):
    """--family formulation: each value beside the stock model, in the same
    rounds; ENet's conv-scope values named with the reason, once."""
    figures = tmp_path / 'family.json'
    printed = _run(['tools/benchmarks/benchmark_architectures.py', '--family',
                    'formulation', '--archs', 'erfnet', 'enet', '--warmup',
                    '0', '--repeats', '1', '--threads', '1', '--json',
                    str(figures)] + SHAPE).stdout
    erfnet, enet = json.loads(figures.read_text())['results']
    assert list(erfnet['figures']) == [
        'stock', 'module', 'merged', 'lowrank32', 'lowrank16']
    assert list(erfnet['latency']) == list(erfnet['figures'])
    params = {k: v['params'] for k, v in erfnet['figures'].items()}
    assert (params['lowrank16'] < params['lowrank32'] < params['merged'] <
            params['module'])
    assert list(enet['figures']) == ['stock', 'module']
    (note, ) = [line for line in printed.splitlines()
                if line.startswith('enet: ')]
    assert note.startswith(
        "enet: merged, lowrank32, lowrank16 not run: expert_scope='conv'")
    rows = [line for line in printed.splitlines()
            if line.startswith('| erfnet | lowrank16 |')]
    assert len(rows) == 1 and rows[0].endswith(
        f"{erfnet['latency']['lowrank16']['median_ms'] / erfnet['latency']['stock']['median_ms']:.3f} |")  # noqa: E501
    refused = _run(['tools/benchmarks/benchmark_architectures.py', '--values', 'merged'],
                   expect=2)
    assert '--values needs --family' in refused.stderr
