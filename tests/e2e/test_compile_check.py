"""tools/compile_check.py: a MoE model's training step under torch.compile.

The default mode's one break (the counts read in group_by_expert) is pinned
on the layer in tests/moe/test_capacity.py."""
import sys

import pytest

from .conftest import MOE_CONFIG, ROOT

pytestmark = pytest.mark.slow


def _tool():
    sys.path.insert(0, str(ROOT / 'tools'))
    try:
        import compile_check
    finally:
        sys.path.pop(0)
    return compile_check


def _check(*extra):
    tool = _tool()
    args = tool.parse_args([str(ROOT / MOE_CONFIG), *extra])
    return tool.run(args), tool


def test_capacity_mode_adds_no_graph_break():
    result, tool = _check('--capacity-factor', '1.25')
    model = result['model']
    assert model['plugin_sites'] == 0, model['places']
    assert model['loss_compiled'] == pytest.approx(model['loss_eager'],
                                                   rel=1e-2)
    assert 'capacity mode (factor 1.25)' in tool.report(result)


def test_bad_capacity_factor_gets_one_line(capsys):
    tool = _tool()
    assert tool.main([str(ROOT / MOE_CONFIG), '--capacity-factor',
                      '-1']) == 2
    assert '--capacity-factor must be > 0' in capsys.readouterr().err
