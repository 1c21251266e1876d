"""tools/analysis_tools/sweep.py end to end on generated scenes: runs in
fresh processes with at most --jobs at once, one row per run, resumed by
running the same command again (finished runs skipped, a killed run
continued from its last checkpoint), a failed run recorded while the others
go on; one-line errors for bad input (in-process through main)."""
import json
import pathlib
import subprocess
import sys

import pytest

from moe_seg_plugin.sweep.spec import ROW_KEYS

from street_runs import fast_options  # noqa: I100

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOL = 'tools/analysis_tools/sweep.py'


def _sweep(*args: str, expect: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, TOOL, *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == expect, (result.stdout[-3000:] +
                                         result.stderr[-3000:])
    return result


def _rows(sweep_dir: pathlib.Path) -> dict:
    return {
        path.parent.name: json.loads(path.read_text())
        for path in sweep_dir.glob('runs/*/row.json')
    }


@pytest.mark.slow
def test_local_sweep_runs_resumes_and_records_failures(street_root,
                                                       tmp_path):
    sweep_dir = tmp_path / 'grid'
    args = ['grid', '--archs', 'enet', '--seeds', '0', '1', '--values',
            'grid2x2', '--jobs', '2', '--work-dir', str(sweep_dir),
            '--cfg-options', *fast_options(street_root, max_iters=2)]
    first = _sweep(*args)
    assert '[4/4]' in first.stdout
    rows = _rows(sweep_dir)
    assert sorted(rows) == ['enet__grid2x2__seed0', 'enet__grid2x2__seed1',
                            'enet__stock__seed0', 'enet__stock__seed1']
    for row in rows.values():
        assert set(ROW_KEYS) <= set(row)
        assert row['status'] == 'done' and row['iters'] == 2
        assert 0 <= row['mIoU'] <= 100 and len(row['IoU']) == 19
        assert row['params'] > 0 and row['gflops'] > 0
    moe = rows['enet__grid2x2__seed0']
    assert list(moe['routing']) == ['decode_head.bottleneck.ext']
    assert moe['latency_ratio'] > 0
    assert (sweep_dir / moe['routing_stats']).is_file()
    assert rows['enet__stock__seed0']['routing'] == {}
    record = json.loads((sweep_dir / 'sweep.json').read_text())
    assert record['family'] == 'grid' and record['seeds'] == [0, 1]
    assert len(record['runs']) == 4

    # Again: everything finished, nothing runs.
    again = _sweep(*args)
    assert '4 of 4 runs finished before; skipped' in again.stdout

    # A run killed after its checkpoint at iteration 2 (no row yet), and
    # a run whose checkpoint is cut short; then a longer schedule.
    killed = sweep_dir / 'runs' / 'enet__grid2x2__seed1'
    (killed / 'row.json').unlink()
    broken = sweep_dir / 'runs' / 'enet__stock__seed1'
    (broken / 'row.json').unlink()
    checkpoint = pathlib.Path((broken / 'last_checkpoint').read_text())
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    third = _sweep(*args, expect=1)
    assert '2 of 4 runs finished before; skipped' in third.stdout
    rows = _rows(sweep_dir)
    resumed = rows['enet__grid2x2__seed1']
    assert resumed['status'] == 'done' and resumed['iters'] == 2
    assert 'resumed epoch: 0, iter: 2' in (killed / 'run.log').read_text()
    failed = rows['enet__stock__seed1']
    assert failed['status'] == 'failed'
    assert 'is not a readable checkpoint' in failed['error']
    assert 'Traceback' in (broken / 'error.log').read_text()
    assert "failed: ['enet__stock__seed1']" in third.stdout

    # Another schedule into the same sweep dir would mix schedules in one
    # table: refused, naming what changed.
    longer = [a if not a.startswith('train_cfg.max_iters=') else
              'train_cfg.max_iters=4' for a in args]
    fourth = _sweep(*longer, expect=2)
    assert ('made with other settings (enet__stock__seed0: '
            'cfg_options.train_cfg.max_iters: 2 then, 4 now)') in \
        fourth.stderr


def _sweep_in_process(tool, capsys, *args: str, expect: int = 0):
    """The tool's ``main`` in this process (for refusals and --dry-run,
    where a fresh process proves nothing more); its (stdout, stderr)."""
    code = tool('sweep').main(list(args))
    out, err = capsys.readouterr()
    assert code == expect, out[-3000:] + err[-3000:]
    return out, err


@pytest.mark.parametrize('args,message', [
    (['nosuch'], "unknown family 'nosuch'"),
    (['grid', '--values', 'grid9x9'], "grid9x9"),
    (['grid', '--archs', 'segformer'], "segformer"),
    (['grid', '--jobs', '0'], '--jobs must be >= 1'),
])
def test_bad_input_is_one_line(tool, capsys, args, message, tmp_path):
    _, err = _sweep_in_process(tool, capsys, *args, '--work-dir',
                               str(tmp_path), '--dry-run', expect=2)
    lines = [line for line in err.splitlines() if line.startswith('error: ')]
    assert len(lines) == 1 and message in lines[0], err[-2000:]
    assert 'Traceback' not in err


def test_a_sweep_dir_of_another_family_is_refused(tool, capsys, tmp_path):
    (tmp_path / 'sweep.json').write_text(json.dumps(dict(
        family='gate', dataset='street', runs=[])))
    _, err = _sweep_in_process(tool, capsys, 'grid', '--archs', 'enet',
                               '--work-dir', str(tmp_path), expect=2)
    assert ("holds a sweep of family 'gate', not 'grid'; choose another "
            'work dir') in err


def test_dry_run_lists_the_runs(tool, capsys, tmp_path):
    out, _ = _sweep_in_process(tool, capsys, 'top_k', '--archs', 'enet',
                               'erfnet', '--seeds', '0', '1', '--work-dir',
                               str(tmp_path), '--dry-run')
    # (3 values + stock) x 2 seeds x 2 archs.
    assert out.strip().endswith('16 runs')
    assert not (tmp_path / 'sweep.json').exists()


@pytest.mark.slow
def test_slurm_sweep_on_a_real_one_node_cluster(slurm_cluster, street_root,
                                                tmp_path):
    """The same command with --executor slurm: submitit submits the runs
    to a real slurmctld, slurmd runs them through srun, the sweep waits
    and reports."""
    import os
    sweep_dir = tmp_path / 'grid'
    result = subprocess.run(
        [sys.executable, TOOL, 'grid', '--archs', 'enet', '--seeds', '0',
         '--values', 'grid2x2', '--executor', 'slurm', '--gpus', '0',
         '--cpus-per-task', '1', '--jobs', '2', '--timeout-min', '20',
         '--work-dir', str(sweep_dir), '--cfg-options',
         *fast_options(street_root, max_iters=2)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env=dict(os.environ, SLURM_CONF=slurm_cluster, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[
        -3000:]
    assert 'submitted 2 Slurm jobs' in result.stdout
    rows = _rows(sweep_dir)
    assert sorted(rows) == ['enet__grid2x2__seed0', 'enet__stock__seed0']
    assert all(row['status'] == 'done' for row in rows.values())
    # Each run's output went to its Slurm job's log, through srun.
    logs = list((sweep_dir / 'slurm').glob('*/*_0_log.out'))
    assert len(logs) == 2
