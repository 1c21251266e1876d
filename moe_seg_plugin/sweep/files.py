"""The sweep tools' files and folders: a folder argument checked before
anything is written (one clear line instead of a traceback), JSON files
read with their path in the error, and JSON files written whole or not
at all (the plugin's atomic writer)."""
import json
import os
import os.path as osp
from typing import Optional

from ..engine.atomic_files import atomic_write
from ..engine.errors import SetupError

ALLOWED_FOLDER = 'give a folder (existing or new)'


def _first_existing(path: str) -> Optional[str]:
    """``path`` or its nearest parent that exists (None if none does)."""
    current = osp.abspath(path)
    while not osp.lexists(current):
        parent = osp.dirname(current)
        if parent == current:
            return None
        current = parent
    return current


def check_folder(path: str, option: str) -> None:
    """Refuse a folder argument that cannot be a folder: an existing file,
    or a path below a file.

    Args:
        path (str): The folder as given.
        option (str): The argument's name in messages (``--work-dir``).

    Raises:
        SetupError: Naming the path, what is in the way and what is
            allowed.
    """
    existing = _first_existing(path)
    if existing is None or osp.isdir(existing):
        return
    if existing == osp.abspath(path):
        raise SetupError(f'{option} {path!r} is a file, not a folder; '
                         f'{ALLOWED_FOLDER}')
    raise SetupError(f'{option} {path!r} cannot be created: {existing!r} is '
                     f'a file, not a folder; {ALLOWED_FOLDER}')


def make_folder(path: str, option: str) -> None:
    """Create a folder argument (and its parents) if it is new.

    Args:
        path (str): The folder.
        option (str): The argument's name in messages.

    Raises:
        SetupError: If it cannot be a folder (see :func:`check_folder`) or
            cannot be created (no permission, ...).
    """
    check_folder(path, option)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise SetupError(f'{option} {path!r} cannot be created '
                         f'({exc.strerror or exc}); {ALLOWED_FOLDER} that '
                         'can be written') from exc


def read_json(path: str, what: str = 'a JSON object') -> dict:
    """A JSON object file the sweep wrote.

    Args:
        path (str): The file.
        what (str): What it should hold, for the message.

    Returns:
        dict: Its content.

    Raises:
        SetupError: Naming the file and why it cannot be used.
    """
    try:
        with open(path, encoding='utf-8') as file:
            data = json.load(file)
    except (OSError, ValueError) as exc:
        reason = (exc.strerror if isinstance(exc, OSError) and exc.strerror
                  else str(exc))
        raise SetupError(f'{path}: not readable JSON ({reason}); it should '
                         f'hold {what}') from exc
    if not isinstance(data, dict):
        raise SetupError(f'{path}: a JSON {type(data).__name__}, not '
                         f'{what}')
    return data


def write_json(path: str, data: object) -> None:
    """Write ``data`` as JSON to ``path`` whole or not at all
    (:func:`~moe_seg_plugin.engine.atomic_files.atomic_write`).

    Args:
        path (str): The file.
        data: JSON-serialisable content.

    Raises:
        SaveFailed: If it could not be written, naming the file.
    """
    atomic_write(path, json.dumps(data, indent=1))
