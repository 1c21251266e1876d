"""Sweep executors: the Slurm path through submitit up to the job scripts
(and a job run as Slurm would run it), the sweep record, progress lines."""
import argparse
import json
import os
import pathlib
import stat
import subprocess
import sys

import pytest

from moe_seg_plugin.engine.errors import SetupError
from moe_seg_plugin.sweep.executors import (Progress, SlurmSettings,
                                            submit_slurm)
from moe_seg_plugin.sweep.spec import RunSpec
from moe_seg_plugin.sweep.sweep_dir import record_sweep

from street_runs import fast_options  # noqa: I100

ROOT = pathlib.Path(__file__).resolve().parents[2]

FAKE_SBATCH = '''#!/bin/sh
count_file="{log}/count"
n=$(cat "$count_file" 2>/dev/null || echo 100)
n=$((n + 1))
echo $n > "$count_file"
cp "$1" "{log}/job_$n.sh"
echo "$@" >> "{log}/args"
echo "Submitted batch job $n"
'''


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """sbatch and srun stand-ins on PATH; sbatch keeps each job script."""
    bin_dir, log = tmp_path / 'bin', tmp_path / 'sbatch'
    bin_dir.mkdir()
    log.mkdir()
    for name, text in (('sbatch', FAKE_SBATCH.format(log=log)),
                       ('srun', '#!/bin/sh\nexit 0\n')):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv('PATH', f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
    return log


def _specs():
    config = 'configs/enet/patchmoe_enet_1xb4-1k_street-cityscapes-256x256.py'
    return [
        RunSpec('expert_init', 'enet', 'stock', 0, config),
        RunSpec('expert_init', 'enet', 'stock', 1, config),
        RunSpec('expert_init', 'enet', 'upcycled', 0, config,
                dict(expert_init='copy'), needs='enet__stock__seed0'),
    ]


def test_slurm_jobs_are_submitted_with_resources_and_dependencies(
        fake_slurm, tmp_path):
    sweep_dir = tmp_path / 'sweep'
    jobs = submit_slurm(_specs(), str(sweep_dir),
                        {'train_cfg.max_iters': 4},
                        SlurmSettings(partition='gpu', gpus=4, nodes=2,
                                      cpus_per_task=8, timeout_min=600),
                        jobs=2)
    assert list(jobs) == ['enet__stock__seed0', 'enet__stock__seed1',
                          'enet__upcycled__seed0']
    scripts = {path.name: path.read_text()
               for path in fake_slurm.glob('job_*.sh')}
    assert len(scripts) == 2  # one array of two baselines, one dependent
    array, dependent = scripts['job_101.sh'], scripts['job_102.sh']
    for script in (array, dependent):
        for flag in ('--partition=gpu', '--gpus-per-node=4', '--nodes=2',
                     '--ntasks-per-node=4', '--cpus-per-task=8',
                     '--time=600', '--job-name=sweep-expert_init'):
            assert f'#SBATCH {flag}' in script, (flag, script)
        assert 'srun' in script and 'submitit.core._submit' in script
    assert '#SBATCH --array=0-1%2' in array
    upcycled = jobs['enet__upcycled__seed0']
    assert f'#SBATCH --dependency=afterok:{jobs["enet__stock__seed0"].job_id}' \
        in dependent
    assert upcycled.job_id == '102'


def test_slurm_skips_finished_runs(fake_slurm, tmp_path):
    sweep_dir = tmp_path / 'sweep'
    done = _specs()[1]
    row_dir = pathlib.Path(done.work_dir(str(sweep_dir)))
    row_dir.mkdir(parents=True)
    (row_dir / 'row.json').write_text(json.dumps(dict(status='done')))
    jobs = submit_slurm(_specs(), str(sweep_dir), None, SlurmSettings())
    assert 'enet__stock__seed1' not in jobs
    assert len(jobs) == 2


@pytest.mark.slow
def test_a_submitted_job_runs_as_on_a_slurm_node(fake_slurm, tmp_path,
                                                 street_root):
    """submitit's own job entry point, started with the environment Slurm
    gives a task, trains and tests the run and writes its row."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    options = parser.parse_args(
        ['--o', *fast_options(street_root, max_iters=2)]).o
    config = 'configs/erfnet/patchmoe_erfnet_fcn_1xb4-1k_street-cityscapes-256x256.py'
    spec = RunSpec('grid', 'erfnet', '2x2', 0, str(ROOT / config),
                   dict(grid=[2, 2]))
    sweep_dir = tmp_path / 'sweep'
    jobs = submit_slurm([spec], str(sweep_dir), options, SlurmSettings())
    job_id = jobs[spec.run_id].job_id
    env = dict(os.environ, SUBMITIT_EXECUTOR='slurm', SLURM_JOB_ID=job_id,
               SLURM_PROCID='0', SLURM_NTASKS='1', SLURM_LOCALID='0',
               SLURM_NODEID='0', SLURM_JOB_NUM_NODES='1',
               SLURM_JOB_NODELIST='localhost', OMP_NUM_THREADS='1')
    result = subprocess.run(
        [sys.executable, '-u', '-m', 'submitit.core._submit',
         str(sweep_dir / 'slurm' / job_id)], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    row = json.loads(
        (pathlib.Path(spec.work_dir(str(sweep_dir))) / 'row.json')
        .read_text())
    assert row['status'] == 'done', row['error']
    assert row['iters'] == 2 and row['mIoU'] is not None
    assert list(row['routing']) == ['decode_head.convs.0']


class _Family:
    name = 'grid'
    values = {'2x2': {}, '3x3': {}}
    default = '3x3'


def test_sweep_record_extends_and_refuses_another_family(tmp_path):
    specs = [RunSpec('grid', 'enet', 'stock', 0, 'c.py'),
             RunSpec('grid', 'enet', '2x2', 0, 'c.py')]
    record_sweep(str(tmp_path), _Family, specs[:1], ['enet'], [0], 'street')
    record = record_sweep(str(tmp_path), _Family, specs, ['enet'], [0, 1],
                          'street')
    assert record['runs'] == ['enet__stock__seed0', 'enet__2x2__seed0']
    assert record['seeds'] == [0, 1]
    assert record['values'] == ['2x2', '3x3']
    other = type('Other', (), dict(name='gate', values={}, default=None))
    with pytest.raises(SetupError, match=r"holds a sweep of family 'grid', "
                       r"not 'gate'; choose another work dir"):
        record_sweep(str(tmp_path), other, [], ['enet'], [0], 'street')


def test_progress_shows_runs_done_and_iterations(tmp_path):
    lines = []
    spec = RunSpec('grid', 'enet', '2x2', 0, 'c.py')
    work_dir = pathlib.Path(spec.work_dir(str(tmp_path)))
    work_dir.mkdir(parents=True)
    (work_dir / 'progress.json').write_text(
        json.dumps(dict(stage='train', iter=120, max_iters=300)))
    progress = Progress(3, str(tmp_path), print_fn=lines.append)
    progress.finished(dict(run_id='enet__stock__seed0', status='done',
                           mIoU=12.345))
    progress.running([spec], force=True)
    progress.finished(dict(run_id='enet__3x3__seed0', status='failed',
                           error='ValueError: bad'))
    assert lines == [
        '[1/3] enet__stock__seed0: mIoU 12.35',
        'runs 1/3 done | running: enet__2x2__seed0 iter 120/300',
        '[2/3] enet__3x3__seed0: FAILED: ValueError: bad',
    ]
