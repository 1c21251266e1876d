"""The README's Quick start: two commands, and the demo runs."""
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _quick_start_commands():
    text = (ROOT / 'README.md').read_text()
    section = text.split('## Quick start', 1)[1]
    block = re.search(r'```bash\n(.*?)```', section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_quick_start_has_two_commands():
    commands = _quick_start_commands()
    assert len(commands) == 2
    assert 'tools/demo.py' in commands[0]
    assert 'pytest' in commands[1]


@pytest.mark.slow
def test_demo_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, 'tools/demo.py', '--iters', '2', '--batch-size',
         '2', '--num-train', '4', '--num-val', '2', '--data-root',
         str(tmp_path / 'data'), '--work-dir', str(tmp_path / 'work')],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert re.search(r'\| ERFNet \(stock\)\s+\|\s+[\d.]+\s+\|', out)
    assert re.search(r'\| ERFNet \+ PatchConvMoE\s+\|\s+[\d.]+\s+\|', out)
    assert (tmp_path / 'work' / 'routing_map.png').stat().st_size > 1000
    assert len(list((tmp_path / 'data' / 'leftImg8bit' / 'val').rglob(
        '*.png'))) == 2
