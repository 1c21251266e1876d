"""Bad input of the sweep tools ends in one clear line, never a traceback
or a silently wrong report: folder arguments that are files, a sweep
record or row.json cut short; the report lists only the runs the sweep
holds; rows are written whole (fsynced before the rename)."""
import json
import os
import pathlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import List

import pytest

from moe_seg_plugin.engine.atomic_files import temp_path
from moe_seg_plugin.engine.errors import SetupError
from moe_seg_plugin.sweep import executors
from moe_seg_plugin.sweep.executors import Progress, run_local
from moe_seg_plugin.sweep.run import finished_row, write_row
from moe_seg_plugin.sweep.spec import BrokenRow, RunSpec, read_row
from moe_seg_plugin.sweep.sweep_dir import check_run_settings, record_sweep

ALLOWED = 'give a folder (existing or new)'
CONFIG = 'configs/enet/patchmoe_enet_1xb4-1k_street-cityscapes-256x256.py'


def _errors(text: str) -> List[str]:
    return [line for line in text.splitlines() if line.startswith('error: ')]


def _row(spec: RunSpec, miou: float) -> dict:
    return dict(run_id=spec.run_id, family=spec.family, arch=spec.arch,
                value=spec.value, seed=spec.seed, baseline=spec.baseline,
                config='cfg.py', status='done', error=None, iters=2,
                mIoU=miou, aAcc=90.0, IoU={}, params=1000, gflops=1.0,
                latency_ms=1.0, stock_latency_ms=1.0, latency_ratio=1.0,
                routing={}, routing_stats=None)


def _sweep(root: pathlib.Path, cut: bool = True) -> pathlib.Path:
    """A grid sweep that ran stock and grid2x2 (seed 0) of three values;
    grid2x2's row.json cut in half if ``cut``."""
    stock = RunSpec('grid', 'enet', 'stock', 0, CONFIG)
    moe = RunSpec('grid', 'enet', 'grid2x2', 0, CONFIG)
    sweep = root / 'sweep'
    for spec, miou in ((stock, 50.0), (moe, 51.0)):
        write_row(spec, str(sweep), _row(spec, miou))
    if cut:
        path = sweep / 'runs' / moe.run_id / 'row.json'
        text = path.read_text()
        path.write_text(text[:len(text) // 2])
    meta = dict(family='grid', dataset='street', archs=['enet'], seeds=[0],
                values=['grid2x2', 'grid3x3', 'grid4x4'], default='grid3x3',
                runs=[stock.run_id, moe.run_id])
    (sweep / 'sweep.json').write_text(json.dumps(meta))
    return sweep


# Folder arguments that are files (tools/analysis_tools/sweep.py,
# tools/analysis_tools/sweep_report.py).
@pytest.mark.parametrize('dry_run', [False, True])
@pytest.mark.parametrize('below', [False, True])
def test_sweep_work_dir_that_is_a_file(tool, tmp_path, capsys, dry_run,
                                       below):
    file = tmp_path / 'afile'
    file.write_text('x')
    work_dir = str(file / 'sub' if below else file)
    code = tool('sweep').main(['grid', '--archs', 'enet', '--seeds', '0',
                               '--work-dir', work_dir]
                              + ['--dry-run'] * dry_run)
    err = capsys.readouterr().err
    assert code == 2 and 'Traceback' not in err
    [line] = _errors(err)
    assert f'--work-dir {work_dir!r}' in line and ALLOWED in line
    assert ('cannot be created' in line) == below
    assert file.read_text() == 'x'


class _Family:
    name = 'grid'
    values = {'grid2x2': {}}
    default = 'grid2x2'


def test_sweep_record_cut_short_names_the_file(tmp_path):
    (tmp_path / 'sweep.json').write_text('{"family": "gr')
    with pytest.raises(SetupError, match=r'sweep\.json: not readable JSON'):
        record_sweep(str(tmp_path), _Family(), [], [], [], 'street')


def test_run_settings_cut_short_names_the_file(tmp_path):
    spec = RunSpec('grid', 'enet', 'stock', 0, CONFIG)
    path = pathlib.Path(spec.work_dir(str(tmp_path))) / 'settings.json'
    path.parent.mkdir(parents=True)
    path.write_text('{"config": ')
    with pytest.raises(SetupError, match=r'settings\.json: not readable'):
        check_run_settings([spec], str(tmp_path), None)


@pytest.mark.parametrize('make,what', [
    (lambda p: p.write_text('x'), 'it is a file'),
    (lambda p: None, 'it does not exist'),
])
def test_report_sweep_dir_that_is_a_file_or_missing(tool, tmp_path, capsys,
                                                    make, what):
    path = tmp_path / 'nosweep'
    make(path)
    code = tool('sweep_report').main([str(path), '--no-plots'])
    err = capsys.readouterr().err
    assert code == 2 and 'Traceback' not in err
    [line] = _errors(err)
    assert f'{str(path)!r} is not a sweep directory ({what};' in line


@pytest.mark.parametrize('below', [False, True])
def test_report_out_dir_that_is_a_file(tool, tmp_path, capsys, below):
    sweep = _sweep(tmp_path, cut=False)
    file = tmp_path / 'afile'
    file.write_text('x')
    out_dir = str(file / 'sub' if below else file)
    code = tool('sweep_report').main([str(sweep), '--no-plots',
                                      '--out-dir', out_dir])
    err = capsys.readouterr().err
    assert code == 2 and 'Traceback' not in err
    [line] = _errors(err)
    assert f'--out-dir {out_dir!r}' in line and ALLOWED in line
    assert not (sweep / 'table.md').exists()  # checked before writing


# A row.json cut short.
def test_read_row_tells_missing_from_broken(tmp_path):
    assert read_row(str(tmp_path / 'row.json')) is None
    (tmp_path / 'row.json').write_text('{"run_id": "a", "sta')
    with pytest.raises(BrokenRow, match=r'row\.json: not a readable row '
                       r'\(cut short or not JSON'):
        read_row(str(tmp_path / 'row.json'))
    (tmp_path / 'row.json').write_text('[1, 2]')
    with pytest.raises(BrokenRow, match='a JSON list, not an object'):
        read_row(str(tmp_path / 'row.json'))


def test_report_lists_a_cut_row_as_broken(tool, tmp_path, capsys):
    sweep = _sweep(tmp_path)
    code = tool('sweep_report').main([str(sweep), '--no-plots'])
    out, err = capsys.readouterr()
    assert code == 1 and 'Traceback' not in err
    row = str(sweep / 'runs' / 'enet__grid2x2__seed0' / 'row.json')
    [line] = _errors(err)
    assert f'{row}: not a readable row (cut short or not JSON' in line
    assert str(sweep / 'table.md') in line
    table = (sweep / 'table.md').read_text()
    assert '| grid2x2 | 0/1, 1 broken |' in table
    assert f'| enet__grid2x2__seed0 | {row}: not a readable row' in table
    assert 'no row yet' not in table  # neither 'not started' ...
    assert '| grid3x3 |' not in table  # ... nor values it never ran
    assert out.startswith(table)


def test_report_lists_only_the_runs_the_sweep_holds(tool, tmp_path, capsys):
    sweep = _sweep(tmp_path, cut=False)
    assert tool('sweep_report').main([str(sweep), '--no-plots']) == 0
    capsys.readouterr()
    table = (sweep / 'table.md').read_text()
    assert '| grid2x2 | 1/1 |' in table
    assert '| grid3x3 |' not in table and '| grid4x4 |' not in table
    assert 'no row yet' not in table
    csv_lines = (sweep / 'table.csv').read_text().splitlines()
    assert [line.split(',')[1] for line in csv_lines[1:]] == [
        'stock', 'grid2x2']


def test_report_with_every_row_broken_is_one_line(tool, tmp_path, capsys):
    sweep = _sweep(tmp_path)
    (sweep / 'runs' / 'enet__stock__seed0' / 'row.json').write_text('{')
    code = tool('sweep_report').main([str(sweep), '--no-plots'])
    err = capsys.readouterr().err
    assert code == 2 and 'Traceback' not in err
    [line] = _errors(err)
    assert 'no run has a readable row.json' in line
    assert 'enet__stock__seed0' in line and '(and 1 more)' in line


class _InlinePool(ThreadPoolExecutor):
    """ProcessPoolExecutor's stand-in: the worker runs in a thread."""

    def __init__(self, max_workers, mp_context=None, max_tasks_per_child=None):
        super().__init__(max_workers)


def test_a_resumed_sweep_runs_a_broken_row_again_and_says_so(
        tmp_path, monkeypatch):
    sweep = _sweep(tmp_path)
    stock = RunSpec('grid', 'enet', 'stock', 0, CONFIG)
    moe = RunSpec('grid', 'enet', 'grid2x2', 0, CONFIG)
    assert finished_row(moe, str(sweep)) is None  # not taken as finished
    ran = []

    def worker(spec: dict, sweep_dir: str, cfg_options) -> dict:
        run = RunSpec.from_dict(spec)
        ran.append(run.run_id)
        write_row(run, sweep_dir, _row(run, 52.0))
        return _row(run, 52.0)

    monkeypatch.setattr(executors, 'ProcessPoolExecutor', _InlinePool)
    monkeypatch.setattr(executors, '_worker', worker)
    lines: List[str] = []
    rows = run_local([stock, moe], str(sweep),
                     progress=Progress(2, str(sweep), print_fn=lines.append))
    assert ran == [moe.run_id]
    assert '1 of 2 runs finished before; skipped' in lines
    row = str(sweep / 'runs' / moe.run_id / 'row.json')
    assert any(line.startswith(f'{moe.run_id}: {row}: not a readable row')
               and line.endswith('running it again (it resumes from its '
                                 'last checkpoint)') for line in lines), lines
    assert [r['mIoU'] for r in rows] == [50.0, 52.0]
    assert read_row(row)['mIoU'] == 52.0


def test_a_dead_worker_with_a_broken_row_is_recorded_failed(tmp_path):
    sweep = _sweep(tmp_path)
    moe = RunSpec('grid', 'enet', 'grid2x2', 0, CONFIG)
    future: Future = Future()
    future.set_exception(RuntimeError('killed'))
    row = executors._result(future, moe, str(sweep))
    assert row['status'] == 'failed'
    assert row['error'] == 'RuntimeError: worker process ended: killed'
    assert read_row(str(sweep / 'runs' / moe.run_id / 'row.json')) == row


# Rows are written whole.
def test_write_row_fsyncs_before_the_rename(tmp_path, monkeypatch):
    events = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd: int) -> None:
        events.append(('fsync', os.readlink(f'/proc/self/fd/{fd}')))
        fsync(fd)

    def recording_replace(src, dst) -> None:
        events.append(('replace', str(src)))
        replace(src, dst)

    monkeypatch.setattr(os, 'fsync', recording_fsync)
    monkeypatch.setattr(os, 'replace', recording_replace)
    spec = RunSpec('grid', 'enet', 'stock', 0, CONFIG)
    write_row(spec, str(tmp_path), _row(spec, 50.0))
    row = os.path.realpath(tmp_path / 'runs' / spec.run_id / 'row.json')
    partial = temp_path(row)
    assert events == [('fsync', partial), ('replace', partial)]
    assert read_row(row)['mIoU'] == 50.0
