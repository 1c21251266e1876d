"""What a benchmark ran on: one description for every benchmark's header.

:func:`describe_machine` gathers the CPU (model, cores, torch threads), the
torch and CUDA versions, the GPU's name when the device is CUDA, and the
checkout's git commit; :func:`machine_line` writes it as one line.
"""
import os
import platform
import subprocess
from typing import Dict, Optional

import torch

from .latency import Device, on_cuda

#: The checkout the plugin runs from (its git commit is reported).
CHECKOUT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cpu_model(cpuinfo: str = '/proc/cpuinfo') -> str:
    """The CPU's model name (Linux's /proc/cpuinfo, else the platform's).

    Args:
        cpuinfo (str): Where Linux describes the CPU.

    Returns:
        str: E.g. 'Intel(R) Xeon(R) ...'; 'unknown' if nothing says.
    """
    try:
        with open(cpuinfo) as file:
            for line in file:
                if line.lower().startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or 'unknown'


def usable_cores() -> int:
    """Cores this process may run on (its affinity; all where unknown)."""
    if hasattr(os, 'sched_getaffinity'):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def git_commit(checkout: str = CHECKOUT) -> Optional[str]:
    """The checkout's short commit, with '+' if tracked files changed.

    Args:
        checkout (str): A folder inside a git work tree.

    Returns:
        str | None: E.g. '1a2b3c4+'; None outside git or without git.
    """
    def git(*args: str) -> str:
        return subprocess.run(['git', *args], cwd=checkout, text=True,
                              capture_output=True, timeout=10,
                              check=True).stdout.strip()

    try:
        commit = git('rev-parse', '--short', 'HEAD')
        dirty = git('status', '--porcelain', '--untracked-files=no')
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ('+' if dirty else '')


def gpu_name(device: Device) -> Optional[str]:
    """The GPU's name for a CUDA ``device``, else None."""
    if not on_cuda(device) or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(torch.device(device or 'cuda'))


def describe_machine(device: Device = 'cpu') -> Dict[str, object]:
    """Everything a benchmark's figures depend on besides the code.

    Args:
        device: The device the benchmark runs on.

    Returns:
        dict: ``device``, ``cpu``, ``cores`` (logical), ``usable_cores``,
        ``threads`` (torch's), ``torch``, ``python``, ``cuda`` (torch's
        CUDA version, None without), ``gpu`` (the device's name on CUDA,
        else None) and ``commit`` (None outside git).
    """
    return dict(device=str(device), cpu=cpu_model(),
                cores=os.cpu_count(), usable_cores=usable_cores(),
                threads=torch.get_num_threads(), torch=torch.__version__,
                python=platform.python_version(), cuda=torch.version.cuda,
                gpu=gpu_name(device), commit=git_commit())


def machine_line(machine: Dict[str, object]) -> str:
    """:func:`describe_machine`'s answer as one header line.

    Args:
        machine (dict): :func:`describe_machine`'s answer.

    Returns:
        str: E.g. 'Machine: cpu; CPU Xeon (2 cores, 2 usable; torch threads:
        1); torch 2.1.0, Python 3.10.12; commit 1a2b3c4'.
    """
    gpu = (f"; GPU {machine['gpu']} (CUDA {machine['cuda']})"
           if machine.get('gpu') else '')
    return (f"Machine: {machine['device']}{gpu}; CPU {machine['cpu']} "
            f"({machine['cores']} cores, {machine['usable_cores']} usable; "
            f"torch threads: {machine['threads']}); torch "
            f"{machine['torch']}, Python {machine['python']}; commit "
            f"{machine['commit'] or 'unknown'}")
