"""The machine description every benchmark prints first."""
import subprocess

import pytest
import torch

from moe_seg_plugin.evaluation import machine


def test_cpu_model_comes_from_cpuinfo(tmp_path):
    info = tmp_path / 'cpuinfo'
    info.write_text('processor\t: 0\nvendor_id\t: Vendor\n'
                    'model name\t: Fancy CPU 9000 @ 3.00GHz\n')
    assert machine.cpu_model(str(info)) == 'Fancy CPU 9000 @ 3.00GHz'
    assert machine.cpu_model(str(tmp_path / 'absent'))  # some name


def _git(folder, *args):
    subprocess.run(['git', '-c', 'user.name=t', '-c', 'user.email=t@t',
                    *args], cwd=folder, check=True, capture_output=True)


def test_git_commit_is_short_and_marks_changes(tmp_path):
    assert machine.git_commit(str(tmp_path)) is None  # not a checkout
    (tmp_path / 'a.txt').write_text('one')
    _git(tmp_path, 'init', '-q')
    _git(tmp_path, 'add', 'a.txt')
    _git(tmp_path, 'commit', '-q', '-m', 'first')
    head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                          cwd=tmp_path, capture_output=True,
                          text=True).stdout.strip()
    assert machine.git_commit(str(tmp_path)) == head
    (tmp_path / 'a.txt').write_text('two')
    assert machine.git_commit(str(tmp_path)) == head + '+'


def test_the_cpu_description_names_torch_and_threads():
    found = machine.describe_machine('cpu')
    assert found['device'] == 'cpu' and found['gpu'] is None
    assert found['threads'] == torch.get_num_threads()
    assert found['torch'] == torch.__version__
    assert 1 <= found['usable_cores'] <= found['cores']


def test_the_line_says_everything_once():
    line = machine.machine_line(dict(
        device='cuda', gpu='NVIDIA H100', cuda='12.1', cpu='Xeon',
        cores=16, usable_cores=8, threads=4, torch='2.1.0',
        python='3.11.7', commit=None))
    assert line == ('Machine: cuda; GPU NVIDIA H100 (CUDA 12.1); CPU Xeon '
                    '(16 cores, 8 usable; torch threads: 4); torch 2.1.0, '
                    'Python 3.11.7; commit unknown')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_a_cuda_device_is_named():
    assert machine.describe_machine('cuda')['gpu'] == (
        torch.cuda.get_device_name(0))
