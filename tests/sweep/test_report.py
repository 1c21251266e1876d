"""The sweep report (tables, plots) and the findings check, on synthetic
sweep directories with hand-chosen mIoUs; and
tools/analysis_tools/sweep_report.py as a subprocess."""
import csv
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

import pytest

from moe_seg_plugin.engine.errors import SetupError
from moe_seg_plugin.sweep.findings import (AGREES, DISAGREES, FINDINGS,
                                           NOISE, NOT_MEASURED,
                                           check_findings, expected_value,
                                           write_findings)
from moe_seg_plugin.sweep.outputs import write_tables
from moe_seg_plugin.sweep.report import (CSV_COLUMNS, Difference,
                                         load_sweep, summarise)

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEEDS = (0, 1, 2)
PNG = b'\x89PNG\r\n\x1a\n'
#: Grid sweep: per arch and value, mIoU per seed (None: the run failed).
GRID = {
    'pspnet': {
        'stock': [60.0, 61.0, 62.0],
        'grid2x2': [60.5, 60.0, 62.5],   # paired diff 0.5, -1, 0.5: noise
        'grid3x3': [63.0, 63.5, 65.5],   # paired diff 3, 2.5, 3.5: better
        'grid4x4': [61.0, 61.5, None],   # seed 2 failed
    },
    'unet': {
        'stock': [50.0, 50.0, 50.0],
        'grid2x2': [53.0, 50.0, 52.0],
        'grid3x3': [52.0, 51.0, 53.0],   # best, but lead over 2x2 is noise
        'grid4x4': [50.0, 51.0, 50.0],
    },
}
GATES = ['gap_linear', 'conv_gap', 'double_conv_gap']
GATE = {
    'pspnet': {
        'stock': [59.0, 59.0, 59.0],
        'gap_linear': [60.0, 60.0, 60.0],
        'conv_gap': [65.0, 66.0, 64.0],        # clearly best
        'double_conv_gap': [61.0, 62.0, 60.0],
    }
}


def _routing(entropy: float, dominant: float) -> dict:
    return dict(usage_entropy=entropy, dominant_share=dominant,
                num_dead=0, importance_cv2=0.1)


def _routing_lines(run_id: str, entropy: float) -> List[str]:
    """routing_stats.json: two train entries and a val entry."""
    layer = 'decode_head.bottleneck'
    train = [
        dict(mode='train', iter=it, run=run_id,
             layers={layer: dict(usage_entropy=entropy * it / 20)})
        for it in (10, 20)
    ]
    val = dict(mode='val', iter=20, run=run_id, classes=['road', 'car'],
               layers={layer: dict(
                   usage_entropy=entropy, dominant_share=0.5,
                   expert_given_class=[[0.7, 0.1, 0.1, 0.1],
                                       [0.1, 0.2, 0.3, 0.4]],
                   class_pixels=[100, 50])})
    return [json.dumps(entry) for entry in train + [val]]


def _write_row(sweep: pathlib.Path, family: str, arch: str, value: str,
               seed: int, miou: Optional[float],
               routing: Optional[dict]) -> str:
    """One run's row.json (and routing_stats.json for a MoE run)."""
    run_id = f'{arch}__{value}__seed{seed}'
    run_dir = sweep / 'runs' / run_id
    run_dir.mkdir(parents=True)
    baseline = value == 'stock'
    stats = None
    if not baseline and miou is not None:
        stats = f'runs/{run_id}/routing_stats.json'
        lines = _routing_lines(run_id, routing['usage_entropy'])
        (sweep / stats).write_text('\n'.join(lines) + '\n')
    row = dict(
        run_id=run_id, family=family, arch=arch, value=value, seed=seed,
        baseline=baseline, config='cfg.py',
        status='failed' if miou is None else 'done',
        error='RuntimeError: loss is NaN at iter 7' if miou is None else None,
        iters=20, mIoU=miou, aAcc=None if miou is None else 90.0, IoU={},
        params=None if miou is None else (1000 if baseline else 1040),
        gflops=None if miou is None else (10.0 if baseline else 10.5),
        latency_ms=1.0, stock_latency_ms=1.0,
        latency_ratio=1.0 if baseline else 1.2,
        routing={} if baseline else {'decode_head.bottleneck': routing},
        routing_stats=stats)
    (run_dir / 'row.json').write_text(json.dumps(row))
    return run_id


def make_sweep(root: pathlib.Path, family: str, values: Sequence[str],
               default: str, mious: Dict[str, Dict[str, list]],
               routing: Optional[Dict[str, List[dict]]] = None
               ) -> pathlib.Path:
    """A sweep directory as tools/analysis_tools/sweep.py leaves it.

    Args:
        root: Where the sweep directory goes.
        family: The family's name.
        values: Its values, in family order.
        default: The paper-default value.
        mious: {arch: {value: [mIoU per seed, None for a failed run]}}.
        routing: {value: [routing summary per seed]} (default: balanced).
    """
    sweep = root / family
    sweep.mkdir(parents=True)
    runs = []
    for arch, by_value in mious.items():
        for value, per_seed in by_value.items():
            for seed, miou in zip(SEEDS, per_seed):
                stats = ((routing or {}).get(value) or
                         [_routing(0.9, 0.2)] * len(SEEDS))[seed]
                runs.append(_write_row(sweep, family, arch, value, seed,
                                       miou, stats))
    meta = dict(family=family, archs=list(mious), seeds=list(SEEDS),
                dataset='street-cityscapes', values=list(values),
                default=default, runs=runs)
    (sweep / 'sweep.json').write_text(json.dumps(meta))
    return sweep


@pytest.fixture(scope='module')
def grid_sweep(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp('sweeps')
    return make_sweep(root, 'grid', ['grid2x2', 'grid3x3', 'grid4x4'],
                      'grid3x3', GRID)


@pytest.fixture(scope='module')
def gate_sweep(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp('sweeps')
    return make_sweep(root, 'gate', GATES, 'double_conv_gap', GATE)


@pytest.fixture(scope='module')
def written(grid_sweep, tmp_path_factory) -> Dict[str, pathlib.Path]:
    out = tmp_path_factory.mktemp('report')
    return {pathlib.Path(p).name: pathlib.Path(p)
            for p in write_tables(str(grid_sweep), str(out))}


def _line(table, arch: str, value: str):
    return next(line for line in table
                if line.arch == arch and line.value == value)


# The table's numbers.
def test_means_std_and_paired_differences(grid_sweep):
    meta, rows = load_sweep(str(grid_sweep))
    table = summarise(rows, meta['values'], meta['seeds'], meta['archs'])
    assert [(t.arch, t.value) for t in table][:4] == [
        ('pspnet', 'stock'), ('pspnet', 'grid2x2'), ('pspnet', 'grid3x3'),
        ('pspnet', 'grid4x4')]
    best = _line(table, 'pspnet', 'grid3x3')
    assert best.miou_mean == pytest.approx(64.0)
    assert best.miou_std == pytest.approx(math.sqrt(1.75))
    assert best.diff.mean == pytest.approx(3.0)
    assert best.diff.std == pytest.approx(0.5)
    assert best.params_pct == pytest.approx(4.0)
    assert best.gflops_pct == pytest.approx(5.0)
    assert best.latency_ratio == pytest.approx(1.2)
    assert best.routing['usage_entropy'] == pytest.approx(0.9)
    failed = _line(table, 'pspnet', 'grid4x4')
    assert (failed.done, failed.failed, failed.expected) == (2, 1, 3)
    assert failed.miou_mean == pytest.approx(61.25)  # failed run left out
    assert failed.diff.mean == pytest.approx(0.75)   # seeds 0 and 1 only
    assert failed.diff.std == pytest.approx(math.sqrt(0.125))
    assert failed.diff.seeds == 2
    assert failed.failures == [('pspnet__grid4x4__seed2',
                                'RuntimeError: loss is NaN at iter 7')]
    stock = _line(table, 'pspnet', 'stock')
    assert (stock.miou_mean, stock.miou_std) == (61.0, 1.0)


def test_noise_marked_both_ways(grid_sweep, written):
    meta, rows = load_sweep(str(grid_sweep))
    table = summarise(rows, meta['values'], meta['seeds'], meta['archs'])
    noise = _line(table, 'pspnet', 'grid2x2')
    assert noise.diff.mean == pytest.approx(0.0)
    assert noise.diff.std == pytest.approx(math.sqrt(0.75))
    assert noise.diff.inside_spread is True
    assert _line(table, 'pspnet', 'grid3x3').diff.inside_spread is False
    text = written['table.md'].read_text()
    assert ('| grid2x2 | 3/3 | 61.00 ± 1.32 | ≈ +0.00 ± 0.87 (noise) |'
            in text)
    assert '| grid3x3 | 3/3 | 64.00 ± 1.32 | +3.00 ± 0.50 |' in text
    assert 'inside the seed spread' in text
    assert ('| pspnet__grid4x4__seed2 | RuntimeError: loss is NaN at iter '
            '7 |' in text)


def test_spread_needs_two_seeds():
    one = Difference(1.5, None, 1)
    assert one.inside_spread is None
    assert one.text() == '+1.50 (n/a: needs >= 2 seeds)'


def test_csv_columns(written):
    with open(written['table.csv'], newline='') as file:
        reader = csv.DictReader(file)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        rows = list(reader)
    assert len(rows) == 8  # 2 archs x (stock + 3 values)
    best = next(r for r in rows
                if r['arch'] == 'pspnet' and r['value'] == 'grid3x3')
    assert float(best['miou_mean']) == pytest.approx(64.0)
    assert float(best['diff_mean']) == pytest.approx(3.0)
    assert best['inside_spread'] == '0'
    assert (best['runs_done'], best['runs_failed']) == ('3', '0')


def test_plots_are_png(written):
    for arch in ('pspnet', 'unet'):
        for kind in ('miou', 'usage_entropy', 'expert_given_class'):
            path = written[f'{kind}_{arch}.png']
            assert path.read_bytes()[:8] == PNG


# The findings.
def _by_family(findings, family: str, arch: str = ''):
    return [f for f in findings
            if f.family == family and f.measured.startswith(arch)]


def test_findings_verdicts(grid_sweep, gate_sweep):
    findings = check_findings([str(grid_sweep), str(gate_sweep)])
    grid_psp, = _by_family(findings, 'grid', 'pspnet')
    assert grid_psp.verdict == AGREES  # grid3x3 beats grid4x4 by 2.0 ± 0.0
    assert "runner-up 'grid4x4'" in grid_psp.measured
    grid_unet, = _by_family(findings, 'grid', 'unet')
    assert grid_unet.verdict == NOISE  # lead over grid2x2: +0.33 ± 1.15
    gate, = _by_family(findings, 'gate')
    assert gate.verdict == DISAGREES   # conv_gap wins by 4.0 ± 0.0
    assert "'conv_gap'" in gate.measured
    top_k, = _by_family(findings, 'top_k')
    assert (top_k.measured, top_k.verdict) == ('family not swept',
                                               NOT_MEASURED)


def test_routing_and_stacking_findings(tmp_path):
    routing = {
        'none': [_routing(0.3, 0.8)] * 3,
        'importance': [_routing(0.6, 0.5), _routing(0.62, 0.52),
                       _routing(0.58, 0.49)],
        'switch': [_routing(0.9, 0.2), _routing(0.92, 0.21),
                   _routing(0.88, 0.19)],
    }
    flat = {'stock': [50.0] * 3, 'none': [51.0] * 3,
            'importance': [51.0] * 3, 'switch': [51.0] * 3}
    balance = make_sweep(tmp_path, 'balance_loss',
                         ['none', 'importance', 'switch'], 'switch',
                         {'pspnet': flat}, routing)
    placement = make_sweep(
        tmp_path, 'placement', ['decoder', 'classifier', 'stacked'],
        'decoder', {'pspnet': {'stock': [50.0] * 3,
                               'decoder': [52.0, 52.5, 53.0],
                               'classifier': [51.0, 51.0, 51.5],
                               'stacked': [49.0, None, 48.0]}})
    findings = check_findings([str(balance), str(placement)])
    verdicts = {f.finding.split(' (')[0]: f.verdict for f in findings}
    assert verdicts['the switch loss gives the most uniform expert usage'] \
        == AGREES
    assert verdicts['the switch loss gives the least collapse'] == AGREES
    assert verdicts['the importance loss leaves a dominant expert'] == AGREES
    assert verdicts['stacking several MoE layers trains unstably'] == AGREES
    assert verdicts['one MoE layer at the decoder\'s last convolution is '
                    'the best placement'] == AGREES
    path = write_findings([str(balance), str(placement)], str(tmp_path))
    assert '| agrees |' in pathlib.Path(path).read_text()


@pytest.mark.parametrize('values,expected', [
    (['grid2x2', 'grid3x3', 'patch48px'], 'grid3x3'),
    (['gap_linear', 'conv_gap', 'double_conv_gap'], 'double_conv_gap'),
    (['top1', 'top2', 'top4'], 'top2'),
    (['decoder', 'classifier', 'encoder', 'stacked'], 'decoder'),
    (['independent', 'shared1'], 'independent'),
])
def test_expected_value_by_name(values, expected):
    """The family files' value names match without the sweep's default."""
    found = {expected_value(spec, dict(values=values, default=None))
             for spec in FINDINGS if spec.kind == 'best'}
    assert expected in found


# Bad input.
def test_not_a_sweep_dir(tmp_path):
    with pytest.raises(SetupError, match='not a sweep directory'):
        load_sweep(str(tmp_path))


def test_sweep_without_rows(tmp_path):
    meta = dict(family='grid', archs=['pspnet'], seeds=[0], dataset='x',
                values=['grid3x3'], default='grid3x3',
                runs=['pspnet__grid3x3__seed0'])
    (tmp_path / 'sweep.json').write_text(json.dumps(meta))
    with pytest.raises(SetupError, match='no run has ended yet'):
        write_tables(str(tmp_path))


# The tool.
def _tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, 'tools/analysis_tools/sweep_report.py', *args],
        cwd=ROOT,
        capture_output=True, text=True, timeout=300,
        env={**os.environ, 'OMP_NUM_THREADS': '1'})


def test_tool(grid_sweep, gate_sweep, tmp_path):
    grid = shutil.copytree(grid_sweep, tmp_path / 'grid')
    gate = shutil.copytree(gate_sweep, tmp_path / 'gate')
    result = _tool(str(grid), str(gate))
    assert result.returncode == 0, result.stderr[-3000:]
    assert '| value | runs | mIoU (mean ± std) |' in result.stdout
    for name in ('table.md', 'table.csv', 'miou_pspnet.png',
                 'usage_entropy_pspnet.png'):
        assert (grid / name).is_file()  # default: into each sweep dir
        assert (gate / name).is_file()
    assert '| disagrees |' in (grid / 'findings.md').read_text()
    assert str(grid / 'findings.md') in result.stdout

    bad = _tool(str(tmp_path / 'nowhere'))
    assert bad.returncode == 2
    assert 'Traceback' not in bad.stderr
    errors = [line for line in bad.stderr.splitlines()
              if line.startswith('error: ')]
    assert len(errors) == 1 and 'not a sweep directory' in errors[0]
