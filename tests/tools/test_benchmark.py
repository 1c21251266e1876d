"""tools/analysis_tools/benchmark.py on the ERFNet street configs at a
small input, in-process: a checkpoint against a given stock config, and
its one-line refusals."""
import json

import pytest
import torch

MOE = 'configs/erfnet/patchmoe_erfnet_fcn_1xb4-1k_street-cityscapes-256x256.py'
STOCK = 'configs/erfnet/erfnet_fcn_1xb4-1k_street-cityscapes-256x256.py'
SHAPE = ['--shape', '64', '128']


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> str:
    """The freshly initialised MoE model, saved as MMEngine saves it."""
    from mmengine.logging import MMLogger
    from mmseg.registry import MODELS

    from moe_seg_plugin.engine import load_config
    torch.manual_seed(0)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')  # no line per initialised weight
    try:
        model = MODELS.build(load_config(MOE).model)
        model.init_weights()
    finally:
        logger.setLevel(level)
    path = tmp_path_factory.mktemp('checkpoint') / 'fresh.pth'
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), path)
    return str(path)


def test_benchmark_against_a_baseline(tool, checkpoint, tmp_path, capsys):
    out = tmp_path / 'latency.json'
    assert tool('benchmark').main([
        MOE, checkpoint, '--baseline', STOCK, '--warmup', '1', '--repeats',
        '3', '--device', 'cpu', '--threads', '1', '--out', str(out)
    ] + SHAPE) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    moe, stock = result['latency']['model'], result['latency']['stock']
    assert len(moe['times_ms']) == len(stock['times_ms']) == 3
    assert moe['min_ms'] <= moe['median_ms'] <= moe['max_ms']
    assert result['ratio'] == pytest.approx(
        moe['median_ms'] / stock['median_ms'])
    assert result['shape'] == [64, 128] and result['repeats'] == 3
    assert result['checkpoint'] == checkpoint and result['baseline'] == STOCK
    assert '\nMachine: cpu; ' in '\n' + printed  # after the loading line
    assert f"ratio model/stock (medians): {result['ratio']:.3f}" in printed


def test_bad_benchmark_input_is_one_line(tool, tmp_path, capsys):
    benchmark = tool('benchmark')
    assert benchmark.main([MOE, str(tmp_path / 'absent.pth')] + SHAPE) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'absent.pth' in err
    assert benchmark.main([STOCK, '--vs-stock'] + SHAPE) == 2
    assert 'has no MoE wrappers' in capsys.readouterr().err
