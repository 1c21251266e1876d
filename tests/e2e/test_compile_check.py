"""tools/deployment/compile_check.py: a MoE model's training step under torch.compile.

The default mode's one break (the counts read in group_by_expert) is pinned
on the layer in tests/moe/test_capacity.py."""
import pytest

from street_runs import MOE_CONFIG, ROOT  # noqa: I100

pytestmark = pytest.mark.slow


def _check(compile_check, *extra):
    args = compile_check.parse_args([str(ROOT / MOE_CONFIG), *extra])
    return compile_check.run(args)


def test_capacity_mode_adds_no_graph_break(tool):
    compile_check = tool('compile_check')
    result = _check(compile_check, '--capacity-factor', '1.25')
    model = result['model']
    assert model['plugin_sites'] == 0, model['places']
    assert model['loss_compiled'] == pytest.approx(model['loss_eager'],
                                                   rel=1e-2)
    assert 'capacity mode (factor 1.25)' in compile_check.report(result)


def test_bad_capacity_factor_gets_one_line(tool, capsys):
    assert tool('compile_check').main(
        [str(ROOT / MOE_CONFIG), '--capacity-factor', '-1']) == 2
    assert '--capacity-factor must be > 0' in capsys.readouterr().err
