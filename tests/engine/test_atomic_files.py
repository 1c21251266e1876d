"""Files are written whole or not at all: MMEngine's local backend (the
Runner's checkpoints, last_checkpoint, dump) and the plugin's own files."""
import errno
import os
import resource
import subprocess
import sys

import pytest
from mmengine.fileio import dump, get_file_backend

from moe_seg_plugin.engine.atomic_files import (AtomicLocalBackend,
                                                SaveFailed, atomic_write,
                                                temp_path)


def test_mmengine_writes_local_files_through_the_atomic_backend(tmp_path):
    assert isinstance(get_file_backend(str(tmp_path / 'x.pth')),
                      AtomicLocalBackend)
    dump({'a': 1}, str(tmp_path / 'a.json'))
    assert (tmp_path / 'a.json').read_text() == '{"a": 1}'
    assert os.listdir(tmp_path) == ['a.json']


def test_a_failed_write_keeps_the_old_content_and_no_temp(tmp_path,
                                                          monkeypatch):
    path = tmp_path / 'iter_2.pth'
    atomic_write(path, b'old')

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, 'fsync', full_disk)
    with pytest.raises(SaveFailed) as info:
        atomic_write(path, b'new content')
    assert str(info.value).startswith(
        f"could not write '{path}': No space left on device (0.0 MiB; its "
        f'previous content is kept)')
    assert path.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['iter_2.pth']


def test_a_write_over_the_file_size_limit_leaves_nothing(tmp_path):
    # ulimit -f in a child: Python ignores SIGXFSZ, the write raises EFBIG.
    code = ('import sys; from moe_seg_plugin.engine.atomic_files import '
            'atomic_write\ntry:\n    atomic_write(sys.argv[1], b"x" * '
            '100000)\nexcept Exception as exc:\n    print(exc)')
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE,  # noqa: E731
                                       (4096, 4096))
    target = tmp_path / 'big.pth'
    result = subprocess.run([sys.executable, '-c', code, str(target)],
                            capture_output=True, text=True, preexec_fn=limit,
                            timeout=120)
    assert result.stdout.startswith(f"could not write '{target}': File too "
                                    'large (0.1 MiB; nothing was written '
                                    'under it)'), result.stderr
    assert os.listdir(tmp_path) == []


def test_temp_files_of_killed_writers_are_removed(tmp_path):
    path = tmp_path / 'iter_4.pth'
    dead = subprocess.run([sys.executable, '-c', 'import os; '
                           'print(os.getpid())'], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f'.iter_4.pth.tmp-{dead}'
    stale.write_bytes(b'cut')
    mine = temp_path(str(tmp_path / 'other.pth'))
    open(mine, 'wb').close()
    atomic_write(path, b'whole')
    assert sorted(os.listdir(tmp_path)) == sorted(
        ['iter_4.pth', os.path.basename(mine)])
