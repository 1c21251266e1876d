"""tools/benchmarks/gpu_figures.py: the GPU figures script, run with --quick sizes on
the CPU (the layer and model tables; the compile check it runs is
tools/deployment/compile_check.py's, tested in test_compile_check.py), and its guards:
a compile failure or timeout is a row, a spent time budget skips
sections."""
import json
import os
import subprocess
import sys

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.slow

SCRIPT = ROOT / 'tools' / 'benchmarks' / 'gpu_figures.py'


def _rows(text: str, first_cells: str) -> list:
    """The rows of the Markdown table whose header starts with
    ``first_cells`` (e.g. '| N | k |'), as dicts by column name."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith(first_cells))
    header = [cell.strip() for cell in lines[start].strip('|').split('|')]
    assert set(lines[start + 1]) <= set('|-'), lines[start + 1]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith('|'):
            break
        cells = [cell.strip() for cell in line.strip('|').split('|')]
        assert len(cells) == len(header), line
        rows.append(dict(zip(header, cells)))
    return rows


def _positive(cell: str) -> float:
    value = float(cell)
    assert value > 0, cell
    return value


@pytest.fixture(scope='module')
def quick_run(tmp_path_factory):
    """One --quick run on the CPU: stdout, the Markdown and JSON files."""
    out = tmp_path_factory.mktemp('gpu_figures')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    done = subprocess.run(
        [sys.executable, str(SCRIPT), '--device', 'cpu', '--quick',
         '--repeats', '1', '--skip-compile',
         '--out', str(out / 'figures.md'), '--json', str(out / 'fig.json')],
        cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(stdout=done.stdout,
                markdown=(out / 'figures.md').read_text(),
                figures=json.loads((out / 'fig.json').read_text()))


def test_layer_table_has_every_n_and_mode(quick_run):
    rows = _rows(quick_run['stdout'], '| N | k | mode |')
    assert [(r['N'], r['mode']) for r in rows] == [
        ('4', 'forward'), ('4', 'fwd+bwd'), ('8', 'forward'),
        ('8', 'fwd+bwd')]
    for row in rows:
        assert row['k'] == '2'
        for column in ('dense x k (ms)', 'MoE (ms)', 'MoE ratio',
                       'capacity 1.25 (ms)', 'capacity ratio'):
            _positive(row[column])
        moe, capacity = row['ratio <= 1.3 (MoE / capacity)'].split(' / ')
        assert {moe, capacity} <= {'yes', 'no'}
        assert (moe == 'yes') == (float(row['MoE ratio']) <= 1.3)
    assert 'bf16 autocast' in quick_run['stdout']


def test_model_table_has_both_models_and_both_timings(quick_run):
    rows = _rows(quick_run['stdout'], '| model | timed |')
    assert [(r['model'], r['timed'], r['input']) for r in rows] == [
        ('DeepLabv3+ R18', 'inference', '1x3x64x128'),
        ('DeepLabv3+ R18', 'train step', '2x3x64x128'),
        ('ERFNet', 'inference', '1x3x64x128'),
        ('ERFNet', 'train step', '2x3x64x128')]
    for row in rows:
        for column in ('stock (ms)', 'MoE (ms)', 'ratio MoE/stock',
                       'MoE spread (ms)', 'ratio spread/stock'):
            _positive(row[column])
        assert float(row['ratio MoE/stock']) == pytest.approx(
            float(row['MoE (ms)']) / float(row['stock (ms)']), rel=0.02)
    assert 'AMP (bfloat16)' in quick_run['stdout']


def test_out_and_json_hold_the_whole_run(quick_run):
    markdown, figures = quick_run['markdown'], quick_run['figures']
    assert markdown.startswith('# PatchConvMoE GPU figures')
    assert '- device: cpu' in markdown
    for heading in ('## 1. PatchConvMoE layer', '## 2. Model latency',
                    '## Sections'):
        assert heading in markdown
    for first_cells in ('| N | k | mode |', '| model | timed |'):
        assert (_rows(markdown, first_cells)
                == _rows(quick_run['stdout'], first_cells))
    sections = _rows(markdown, '| section |')
    assert [(s['section'], s['status']) for s in sections] == [
        ('layer', 'ok'), ('models', 'ok')]
    assert figures['environment']['device_name'] == 'cpu'
    assert len(figures['layer']['rows']) == 4
    assert len(figures['models']['rows']) == 4
    assert 'compile' not in figures


def test_compile_failure_and_timeout_are_rows(tool):
    figures = tool('gpu_figures')
    args = figures.settle(figures.parse_args(
        ['--device', 'cpu', '--quick', '--compile-backend',
         'no_such_backend']))
    failed = figures.compile_in_subprocess(args, 'default', timeout=120)
    assert failed['status'].startswith('failed: InvalidBackend'), failed
    args = figures.settle(figures.parse_args(['--device', 'cpu', '--quick']))
    late = figures.compile_in_subprocess(args, 'capacity', timeout=1)
    assert late['status'] == 'timeout after 1 s', late
    text = figures.render_compile(dict(config='c.py', backend='eager', batch=2,
                                    shape=[64, 64], rows=[failed, late]))
    rows = _rows(text, '| MoE mode |')
    assert [r['status'] for r in rows] == [failed['status'],
                                           late['status']]
    assert rows[0]['graphs'] == '-'


def test_spent_budget_skips_every_section(tool, tmp_path, capsys):
    import torch
    from mmengine.logging import MMLogger
    figures = tool('gpu_figures')
    out = tmp_path / 'figures.md'
    # main() quiets MMEngine's logger and sets cudnn.benchmark: undo that
    # for the tests that run after this one in the same process.
    logger = MMLogger.get_current_instance()
    level, benchmark = logger.level, torch.backends.cudnn.benchmark
    try:
        assert figures.main(['--device', 'cpu', '--quick', '--budget', '0',
                          '--out', str(out)]) == 0
    finally:
        logger.setLevel(level)
        torch.backends.cudnn.benchmark = benchmark
    sections = _rows(out.read_text(), '| section |')
    assert [(s['section'], s['status']) for s in sections] == [
        (name, 'skipped (time budget spent)')
        for name in ('layer', 'models', 'compile')]
    assert '| section |' in capsys.readouterr().out
