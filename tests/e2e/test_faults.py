"""Faults as users meet them, on real ``tools/train.py`` / ``tools/test.py``
processes: a run killed with SIGKILL and resumed repeats the uninterrupted
run bit for bit (dropout, random augmentation and noisy gating on); a save
that fails (file-size limit) is one line, leaves no cut-off file, and
``--resume`` goes on from the last complete checkpoint; a run killed before
its first checkpoint starts again without doubled routing statistics; a
damaged label is named."""
import json
import os
import pathlib
import re
import resource
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from street_runs import MOE_CONFIG, ROOT, error_line  # noqa: I100

pytestmark = pytest.mark.slow

HERE = pathlib.Path(__file__).resolve().parent


def _options(data_root: str, max_iters: int, workers: int = 0,
             interval: int = 4) -> list:
    """A few 64x64 iterations with the street config's own augmentation,
    ERFNet's dropout and noisy gating, checkpoint and validation every
    ``interval`` iterations, a loss logged every iteration."""
    return [
        f'train_dataloader.dataset.data_root={data_root}',
        f'val_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.data_root={data_root}',
        'train_dataloader.batch_size=2',
        f'train_dataloader.num_workers={workers}',
        'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
        'train_dataloader.dataset.pipeline.2.scale=(128,64)',
        'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
        'val_dataloader.dataset.pipeline.1.scale=(128,64)',
        'test_dataloader.dataset.pipeline.1.scale=(128,64)',
        'model.data_preprocessor.size=(64,64)',
        'model.decode_head.moe.noisy_gating=True',
        f'train_cfg.max_iters={max_iters}',
        f'train_cfg.val_interval={interval}',
        f'default_hooks.checkpoint.interval={interval}',
        'default_hooks.logger.interval=1', 'param_scheduler.0.end=100',
    ]


def _killing_config(tmp_path: pathlib.Path, at: int) -> str:
    """MOE_CONFIG with a hook that SIGKILLs the run before iteration
    ``at``."""
    path = tmp_path / f'kill_at_{at}.py'
    path.write_text(
        f"_base_ = ['{ROOT / MOE_CONFIG}']\n"
        "custom_imports = dict(imports=['moe_seg_plugin', 'kill_hook'],\n"
        "                      allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='RoutingStatsHook'),\n"
        f"                dict(type='KillAtIterHook', at={at})]\n")
    return str(path)


def _run(tool: str, *args: str, file_limit: int = None,
         config: str = MOE_CONFIG) -> subprocess.CompletedProcess:
    """``tools/<tool> config args``; ``file_limit`` bytes as ``ulimit -f``."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join(
                   [str(HERE), os.environ.get('PYTHONPATH', '')]))
    return subprocess.run(
        [sys.executable, f'tools/{tool}', config, *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=600,
        preexec_fn=limit if file_limit else None)


def _losses(work_dir: pathlib.Path) -> dict:
    """Iteration -> training loss, from the runs' scalars.json files."""
    losses = {}
    for path in sorted(work_dir.glob('*/vis_data/scalars.json')):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if 'loss' in entry:
                losses[entry['step']] = entry['loss']
    return losses


@pytest.mark.parametrize('workers', [0, 2])
def test_kill_and_resume_repeats_the_uninterrupted_run(street_root, tmp_path,
                                                       workers):
    # randomness.seed for the comparison with a separate uninterrupted run;
    # without one, --resume takes the checkpoint's (next test).
    options = _options(street_root, 8, workers) + ['randomness.seed=7']
    whole, cut = tmp_path / 'whole', tmp_path / 'cut'
    done = _run('train.py', '--work-dir', str(whole), '--cfg-options',
                *options)
    assert done.returncode == 0, done.stderr[-4000:]
    killed = _run('train.py', '--work-dir', str(cut), '--cfg-options',
                  *options, config=_killing_config(tmp_path, at=6))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-4000:]
    assert (cut / 'iter_4.pth').is_file()
    assert not (cut / 'iter_8.pth').exists()
    resumed = _run('train.py', '--work-dir', str(cut), '--resume',
                   '--cfg-options', *options)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert _losses(cut) == _losses(whole)
    assert sorted(_losses(whole)) == list(range(1, 9))
    expected = torch.load(whole / 'iter_8.pth')['state_dict']
    got = torch.load(cut / 'iter_8.pth')['state_dict']
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        assert torch.equal(got[key], value), key


def test_resume_without_a_configured_seed_keeps_the_runs_seed(street_root,
                                                              tmp_path):
    options = _options(street_root, 6, interval=2)
    work = tmp_path / 'work'
    killed = _run('train.py', '--work-dir', str(work), '--cfg-options',
                  *options, config=_killing_config(tmp_path, at=5))
    assert killed.returncode == -signal.SIGKILL
    before = _losses(work)
    assert sorted(before) == [1, 2, 3, 4, 5]
    resumed = _run('train.py', '--work-dir', str(work), '--resume',
                   '--cfg-options', *options)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    # Resumed at iteration 4: iteration 5 again, on the same random streams.
    last_run = sorted(work.glob('*/vis_data/scalars.json'))[-1]
    again = [json.loads(line) for line in last_run.read_text().splitlines()]
    again = {e['step']: e['loss'] for e in again if 'loss' in e}
    assert again[5] == before[5]
    seeds = {torch.load(path)['meta']['seed'] for path in work.glob('*.pth')}
    assert len(seeds) == 1


def test_a_failed_save_is_one_line_and_resume_takes_the_last_whole_one(
        street_root, tmp_path):
    work = tmp_path / 'work'
    options = _options(street_root, 2, interval=2)
    first = _run('train.py', '--work-dir', str(work), '--cfg-options',
                 *options)
    assert first.returncode == 0, first.stderr[-4000:]
    size = (work / 'iter_2.pth').stat().st_size
    options = _options(street_root, 4, interval=2)
    # ulimit -f below a checkpoint's size: the save of iter_4.pth fails.
    failed = _run('train.py', '--work-dir', str(work), '--resume',
                  '--cfg-options', *options, file_limit=size // 2)
    line = error_line(failed)
    assert line.startswith(
        f"error: could not write '{work / 'iter_4.pth'}': File too large")
    assert not (work / 'iter_4.pth').exists()
    assert not [p for p in os.listdir(work) if '.tmp-' in p]
    assert (work / 'last_checkpoint').read_text().strip().endswith(
        'iter_2.pth')
    resumed = _run('train.py', '--work-dir', str(work), '--resume',
                   '--cfg-options', *options)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert 'resumed epoch: 0, iter: 2' in resumed.stdout + resumed.stderr
    assert torch.load(work / 'iter_4.pth')['meta']['iter'] == 4


def test_killed_before_the_first_checkpoint_starts_over_without_doubles(
        street_root, tmp_path):
    work = tmp_path / 'work'
    options = _options(street_root, 4, interval=4)
    killed = _run('train.py', '--work-dir', str(work), '--cfg-options',
                  *options, config=_killing_config(tmp_path, at=3))
    assert killed.returncode == -signal.SIGKILL
    stats = work / 'routing_stats.json'
    entries = [json.loads(line) for line in stats.read_text().splitlines()]
    assert [(e['mode'], e['iter']) for e in entries] == [('train', 1),
                                                         ('train', 2),
                                                         ('train', 3)]
    resumed = _run('train.py', '--work-dir', str(work), '--resume',
                   '--cfg-options', *options)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    entries = [json.loads(line) for line in stats.read_text().splitlines()]
    assert [(e['mode'], e['iter']) for e in entries] == [
        ('train', 1), ('train', 2), ('train', 3), ('train', 4), ('val', 4)]
    assert len({e['run'] for e in entries}) == 1


def _damage_labels(street_root: str, tmp_path: pathlib.Path) -> str:
    """A copy of the street data whose label PNGs are all cut in half (so
    the first batch meets one, whatever the sampler's order)."""
    root = tmp_path / 'damaged'
    shutil.copytree(street_root, root)
    for label in root.glob('gtFine/*/*/*_labelTrainIds.png'):
        data = label.read_bytes()
        label.write_bytes(data[:len(data) // 2])
    return str(root)


@pytest.mark.parametrize('workers', [0, 2])
def test_a_damaged_label_is_named(street_root, fresh_checkpoint, tmp_path,
                                  workers):
    root = _damage_labels(street_root, tmp_path)
    options = _options(root, 2, workers)

    def named(split: str) -> str:
        return (f"error: data file '{re.escape(root)}/gtFine/{split}/\\w+/"
                f"\\w+_labelTrainIds.png' \\(seg_map_path\\) could not be "
                f'read: OSError: image file is truncated. The file is damaged')

    train = _run('train.py', '--work-dir', str(tmp_path / 'train'),
                 '--cfg-options', *options)
    assert re.match(named('train'), error_line(train))
    if workers:
        return
    test = _run('test.py', fresh_checkpoint, '--work-dir',
                str(tmp_path / 'test'), '--cfg-options', *options)
    assert re.match(named('val'), error_line(test))
