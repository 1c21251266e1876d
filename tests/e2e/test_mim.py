"""``mim search/train/test moe_seg_plugin`` from a regular install, with
openmim installed beside the stack and setuptools restored afterwards by
the command the docs give (docs/en/user_guides/4_mmseg_tools.md)."""
import os
import pathlib
import subprocess
import sys
import sysconfig

import pytest

from street_runs import ROOT, fast_options  # noqa: I100

pytestmark = pytest.mark.slow

ENET = 'patchmoe_enet_1xb4-1k_street-cityscapes-256x256'
#: The docs' page on mim, which gives the command below.
MIM_DOCS = ROOT / 'docs' / 'en' / 'user_guides' / '4_mmseg_tools.md'
#: The command that undoes openmim's setuptools downgrade.
RESTORE_SETUPTOOLS = 'pip install "setuptools>=77.0.3,<81"'


def _run(args, cwd, timeout=900) -> subprocess.CompletedProcess:
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope='module')
def mim_env(tmp_path_factory) -> pathlib.Path:
    """A virtual environment that sees this one's packages (a path file, so
    it works from inside a venv too) and has openmim and a regular install
    of the plugin of its own; returns its bin folder."""
    venv = tmp_path_factory.mktemp('mim_venv')
    built = _run([sys.executable, '-m', 'venv', str(venv)], cwd=venv)
    assert built.returncode == 0, built.stderr
    bin_dir = venv / 'bin'
    python = str(bin_dir / 'python')
    purelib = _run([python, '-c', 'import sysconfig; print(sysconfig.'
                    'get_paths()["purelib"])'], cwd=venv).stdout.strip()
    parent = sysconfig.get_paths()['purelib']
    pathlib.Path(purelib, 'parent_env.pth').write_text(parent + '\n')
    pip = [python, '-m', 'pip', 'install', '-q']
    got = _run(pip + ['openmim'], cwd=venv)
    if got.returncode != 0:
        pytest.skip(f'openmim not installable here: {got.stderr[-300:]}')
    wheels = tmp_path_factory.mktemp('wheel')
    made = _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
                 '--no-build-isolation', '-q', '-w', str(wheels), str(ROOT)],
                cwd=wheels)
    assert made.returncode == 0, made.stderr[-2000:]
    wheel = str(next(wheels.glob('*.whl')))
    installed = _run(pip + ['--no-deps', wheel], cwd=venv)
    assert installed.returncode == 0, installed.stderr[-2000:]
    restore = RESTORE_SETUPTOOLS.split()[2:]
    restored = _run(pip + [arg.strip('"') for arg in restore], cwd=venv)
    assert restored.returncode == 0, restored.stderr[-2000:]
    return bin_dir


def test_the_docs_name_the_restore_command():
    assert RESTORE_SETUPTOOLS in MIM_DOCS.read_text()


def test_setuptools_is_back_in_range(mim_env):
    out = _run([str(mim_env / 'python'), '-c',
                'import setuptools; print(setuptools.__version__)'],
               cwd=mim_env)
    major = int(out.stdout.split('.')[0])
    assert 77 <= major < 81, out.stdout


def test_mim_search_lists_the_configs_with_their_settings(mim_env, tmp_path):
    out = _run([str(mim_env / 'mim'), 'search', 'moe_seg_plugin', '--config',
                ENET], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    fields = {
        key.lower(): value
        for key, value in (line.split(None, 1)
                           for line in out.stdout.splitlines()
                           if len(line.split(None, 1)) == 2)
    }
    assert fields['moe_experts'] == '8'
    assert fields['moe_top-k'] == '2'
    assert fields['moe_grid'] == '3x3'
    assert fields['training_data'].startswith('street scenes')
    assert float(fields['parameters(m)']) > 0
    assert float(fields['flops(g)']) > 0


def test_mim_train_then_mim_test(mim_env, street_root, tmp_path):
    options = fast_options(street_root, max_iters=2)
    work = tmp_path / 'work'
    train = _run([str(mim_env / 'mim'), 'train', 'moe_seg_plugin',
                  f'{ENET}.py', '--work-dir', str(work), '--cfg-options',
                  *options], cwd=tmp_path)
    assert train.returncode == 0, (train.stdout + train.stderr)[-3000:]
    checkpoint = work / 'iter_2.pth'
    assert checkpoint.is_file()
    test = _run([str(mim_env / 'mim'), 'test', 'moe_seg_plugin',
                 f'{ENET}.py', '--checkpoint', str(checkpoint),
                 '--work-dir', str(work / 'test'), '--cfg-options',
                 *options], cwd=tmp_path)
    assert test.returncode == 0, (test.stdout + test.stderr)[-3000:]
    assert 'moe/test/decode_head.bottleneck.ext/usage_entropy' in (
        test.stdout + test.stderr)
