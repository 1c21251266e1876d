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
def test_demo_runs():
    result = subprocess.run(
        [sys.executable, 'tools/demo.py', '--steps', '3'], cwd=ROOT,
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    gap = re.search(r'max \|diff\| = (\S+)', result.stdout)
    assert gap and float(gap.group(1)) < 1e-5
    assert 'step   3' in result.stdout
