"""Train, validate, checkpoint, resume and test a PatchConvMoE config on
generated data, through our tools and MMSeg's own tools/train.py."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

from street_runs import MOE_CONFIG, ROOT, fast_options  # noqa: I100

pytestmark = pytest.mark.slow


def _run(args, timeout=900, env=None):
    result = subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env=dict(os.environ, **(env or {})))
    assert result.returncode == 0, (result.stdout[-3000:] +
                                    result.stderr[-5000:])
    return result


def _scalars(work_dir: pathlib.Path):
    logs = sorted(work_dir.glob('*/vis_data/scalars.json'))
    assert logs, f'no scalars.json under {work_dir}'
    return [json.loads(line) for line in logs[-1].read_text().splitlines()]


def test_train_resume_test_with_our_tools(street_root, tmp_path):
    work = tmp_path / 'work'
    train = [sys.executable, 'tools/train.py', MOE_CONFIG, '--work-dir',
             str(work), '--cfg-options']
    _run(train + fast_options(street_root, max_iters=4))
    assert (work / 'iter_4.pth').is_file()
    records = _scalars(work)
    trained = [r for r in records if 'decode.loss_moe_switch' in r]
    assert trained and 'decode.moe_usage_entropy' in trained[-1]
    assert any('mIoU' in r for r in records)

    _run(train + fast_options(street_root, max_iters=6) + ['--resume'])
    assert (work / 'iter_6.pth').is_file()
    last = (work / 'last_checkpoint').read_text().strip()
    assert last.endswith('iter_6.pth')

    out = tmp_path / 'preds'
    # Testing needs no training data (MMEngine would otherwise read it).
    options = fast_options(street_root) + [
        f'train_dataloader.dataset.data_root={tmp_path}/absent'
    ]
    _run([sys.executable, 'tools/test.py', MOE_CONFIG, last, '--work-dir',
          str(tmp_path / 'test'), '--out', str(out), '--show-dir', 'vis',
          '--cfg-options'] + options)
    assert len(list(out.glob('*.png'))) == 2
    assert len(list((tmp_path / 'test').rglob('vis/**/*.png'))) == 2


def test_mmseg_shipped_train_script(street_root, tmp_path):
    import mmseg
    script = pathlib.Path(mmseg.__file__).parent / '.mim' / 'tools' / \
        'train.py'
    work = tmp_path / 'work'
    _run([sys.executable, str(script), MOE_CONFIG, '--work-dir', str(work),
          '--cfg-options'] + fast_options(street_root, max_iters=2))
    assert (work / 'iter_2.pth').is_file()


def test_distributed_two_cpu_processes(street_root, tmp_path):
    work = tmp_path / 'work'
    result = _run(['bash', 'tools/dist_train.sh', MOE_CONFIG, '2',
                   '--work-dir', str(work), '--cfg-options'] +
                  fast_options(street_root, max_iters=2),
                  env=dict(PORT='29517', OMP_NUM_THREADS='1'))
    assert (work / 'iter_2.pth').is_file()
    log = result.stdout + result.stderr
    assert 'distributed on CPU: gloo backend' in log


def test_missing_data_root_says_how_to_generate(tmp_path):
    result = subprocess.run(
        [sys.executable, 'tools/train.py', MOE_CONFIG, '--work-dir',
         str(tmp_path), '--cfg-options',
         f'train_dataloader.dataset.data_root={tmp_path}/nowhere'],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert 'train_dataloader.dataset: image folder' in result.stderr
    assert 'python tools/misc/generate_street_data.py --layout cityscapes' in \
        result.stderr
    assert 'Traceback' not in result.stderr
