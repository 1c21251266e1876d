"""Files written whole or not at all.

A checkpoint or result file that a full disk, a file-size limit or a kill
cuts short must never stand under its final name: ``--resume`` would pick
it, or a report would read half of it. :func:`atomic_write` writes to a
hidden temporary file beside the target, flushes it to disk and renames it
over the target (``os.replace`` is atomic on POSIX and Windows), so the
target holds either the old or the new content.

:class:`AtomicLocalBackend` is MMEngine's ``LocalBackend`` with its writes
(``put``, ``put_text``) made atomic; :func:`use_atomic_local_writes`
registers it as MMEngine's ``'local'`` file backend when the plugin is
imported, so the Runner's checkpoints (``save_checkpoint`` writes through
the backend), ``last_checkpoint`` and MMEngine's ``dump`` are atomic
without any config change.
"""
import errno
import glob
import os
import os.path as osp
from typing import Union

from mmengine.fileio import LocalBackend, register_backend
from mmengine.fileio import io as mm_io

from .errors import SetupError

#: Temporary files: ``.<name>.tmp-<pid>`` beside the target.
TEMP_MARK = '.tmp-'


class SaveFailed(SetupError):
    """A file could not be written; the tools print it as one line."""


def temp_path(path: str) -> str:
    """The temporary file :func:`atomic_write` fills for ``path``."""
    folder, name = osp.split(path)
    return osp.join(folder, f'.{name}{TEMP_MARK}{os.getpid()}')


def atomic_write(path: Union[str, os.PathLike],
                 data: Union[bytes, str],
                 encoding: str = 'utf-8') -> None:
    """Write ``data`` to ``path`` whole or not at all.

    Args:
        path: The target file; its folder is made if missing.
        data: Bytes, or text encoded with ``encoding``.
        encoding (str): Encoding of text data.

    Raises:
        SaveFailed: If the data could not be written (disk full, file too
            large, no permission), naming the file and the reason; the
            target keeps its previous content (or stays absent).
    """
    path = os.fspath(path)
    folder = osp.dirname(path) or '.'
    payload = data.encode(encoding) if isinstance(data, str) else data
    _remove_stale_temps(path)
    temp = temp_path(path)
    try:
        os.makedirs(folder, exist_ok=True)
        with open(temp, 'wb') as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except OSError as exc:
        _remove(temp)
        kept = ('its previous content is kept'
                if osp.exists(path) else 'nothing was written under it')
        raise SaveFailed(
            f'could not write {path!r}: {exc.strerror or exc} '
            f'({len(payload) / 2**20:.1f} MiB; {kept}). Free disk space or '
            f'lift the file-size limit, then run again (--resume continues '
            f'from the last complete checkpoint)') from exc


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _remove_stale_temps(path: str) -> None:
    """Delete temporary files of ``path`` left by killed processes."""
    folder, name = osp.split(path)
    pattern = osp.join(glob.escape(folder), f'.{glob.escape(name)}'
                       f'{TEMP_MARK}*')
    for temp in glob.glob(pattern):
        pid = temp.rsplit(TEMP_MARK, 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            _remove(temp)


def _alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend whose writes are atomic."""

    def put(self, obj: bytes, filepath) -> None:
        """Write bytes to ``filepath`` whole or not at all."""
        atomic_write(filepath, obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` whole or not at all."""
        atomic_write(filepath, obj, encoding)


def use_atomic_local_writes() -> None:
    """Make :class:`AtomicLocalBackend` MMEngine's backend for local paths
    (also for backends MMEngine made and cached before)."""
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    for key, backend in list(mm_io.backend_instances.items()):
        if type(backend) is LocalBackend:
            del mm_io.backend_instances[key]
