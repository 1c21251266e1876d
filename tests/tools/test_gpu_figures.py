"""tools/benchmarks/gpu_figures.sh, checked cheaply: without CUDA it
refuses in one line; with a stand-in interpreter that records its calls,
every step runs the tool it names with flags that tool's parser accepts,
on --device cuda, writing under the output folder."""
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'tools' / 'benchmarks' / 'gpu_figures.sh'
#: One device command runs at most 600 s: the steps' limits must fit.
DEVICE_SECONDS = 600
STAND_IN = """#!/bin/sh
# python -c '<the CUDA check>': CUDA is there; else record the call.
if [ "$1" = "-c" ]; then exit 0; fi
for arg in "$@"; do printf '%s\\n' "$arg"; done >>"$RECORD"
echo ::end:: >>"$RECORD"
echo "printed by $1"
"""


def _run(out, *steps, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(['bash', str(SCRIPT), str(out), *steps],
                          cwd=str(ROOT), env=env, capture_output=True,
                          text=True, timeout=120)


def test_without_cuda_it_refuses_in_one_line(tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', PYTHON=sys.executable)
    done = _run(tmp_path / 'out', env=env)
    assert done.returncode == 1 and done.stdout == ''
    (line, ) = done.stderr.splitlines()
    assert line.startswith('gpu_figures.sh: refused: torch.cuda.')
    assert not (tmp_path / 'out').exists()


@pytest.fixture(scope='module')
def recorded(tmp_path_factory) -> dict:
    """Every step run with the stand-in interpreter: its calls, the
    steps' exit codes and the output folder."""
    folder = tmp_path_factory.mktemp('gpu_figures')
    python = folder / 'python'
    python.write_text(STAND_IN)
    python.chmod(0o755)
    env = dict(os.environ, PYTHON=str(python),
               RECORD=str(folder / 'calls.txt'))
    done = _run(folder / 'out', env=env)
    assert done.returncode == 0, done.stderr
    calls = (folder / 'calls.txt').read_text().split('::end::\n')[:-1]
    return dict(calls=[call.splitlines() for call in calls],
                out=folder / 'out', env=env)


def _tool(path: str):
    spec = importlib.util.spec_from_file_location('gpu_step', ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_step_runs_and_reports_its_exit_code(recorded):
    out = recorded['out']
    steps = (out / 'steps.txt').read_text().splitlines()
    names = [line.split()[0] for line in steps]
    assert [line.split()[1] for line in steps] == ['0'] * len(steps)
    assert len(names) == len(set(names)) == len(recorded['calls']) >= 7
    for name, call in zip(names, recorded['calls']):
        assert (out / f'{name}.md').read_text() == f'printed by {call[0]}\n'


def test_every_tool_accepts_its_flags_on_cuda(recorded):
    out = str(recorded['out'])
    tools = set()
    for call in recorded['calls']:
        path, argv = call[0], call[1:]
        assert (ROOT / path).is_file(), path
        args = _tool(path).parse_args(argv)  # SystemExit on a bad flag
        assert args.device == 'cuda', call
        for option in ('out', 'json'):
            if getattr(args, option, None):
                assert getattr(args, option).startswith(out + '/'), call
        configs = [arg for arg in argv if arg.startswith('configs/')]
        assert all((ROOT / config).is_file() for config in configs)
        tools.add(path)
    assert tools == {
        'tools/benchmarks/benchmark_dispatch.py',
        'tools/benchmarks/benchmark_moe_layer.py',
        'tools/benchmarks/benchmark_architectures.py',
        'tools/analysis_tools/benchmark.py',
        'tools/deployment/compile_check.py'}


def test_named_steps_run_alone(recorded, tmp_path):
    done = _run(tmp_path / 'out', 'floor', 'latency', env=recorded['env'])
    assert done.returncode == 0, done.stderr
    steps = (tmp_path / 'out' / 'steps.txt').read_text()
    assert steps == 'floor 0\nlatency 0\n'


def test_the_step_limits_fit_one_device_command():
    text = SCRIPT.read_text()
    limits = re.findall(r'^step \w+ (\d+) ', text, flags=re.M)
    seconds = [int(limit) for limit in limits]
    assert len(seconds) >= 7
    # each step may get 5 s more to be killed after its limit
    assert 'timeout -k 5 ' in text
    assert sum(seconds) + 5 * len(seconds) <= DEVICE_SECONDS
