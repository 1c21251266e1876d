"""tools/analysis_tools/get_flops.py on the ERFNet street configs at a
small input (the latency tools' tests: tests/tools/test_benchmark*.py)."""
import json
import subprocess
import sys

import pytest

from street_runs import MOE_CONFIG, ROOT  # noqa: I100

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
    assert (layer['num_experts'], layer['top_k'],
            layer['grid']) == (8, 2, [3, 3])
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
