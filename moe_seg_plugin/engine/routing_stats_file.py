"""The routing statistics file: one JSON object a line (like MMEngine's
scalars.json), which a resumed training run continues."""
import json
import os.path as osp

from .atomic_files import atomic_write


def append_entry(path: str, entry: dict) -> None:
    """Add ``entry`` as a line of the file at ``path``.

    The file is rewritten whole (:func:`atomic_write`), so a failed write
    leaves it as it was.

    Args:
        path (str): The file (created if missing).
        entry (dict): A JSON-serialisable entry.
    """
    written = ''
    if osp.isfile(path):
        with open(path, encoding='utf-8') as file:
            written = file.read()
    atomic_write(path, written + json.dumps(entry) + '\n')


def drop_entries_after(path: str, start: int) -> int:
    """Drop what a training run that starts at iteration ``start`` logs
    again: the train and val entries of later iterations, and a line cut
    short by a crash.

    Args:
        path (str): The file (nothing happens if missing).
        start (int): The iteration the run starts at (0 for a fresh run
            and for a ``--resume`` that found no checkpoint).

    Returns:
        int: How many lines were dropped.
    """
    if not osp.isfile(path):
        return 0
    with open(path, encoding='utf-8') as file:
        lines = file.read().splitlines()
    kept = [line for line in lines if _kept(line, start)]
    if len(kept) < len(lines):
        atomic_write(path, ''.join(line + '\n' for line in kept))
    return len(lines) - len(kept)


def _kept(line: str, start: int) -> bool:
    """Whether a line stays when a run starts at iteration ``start``.

    Args:
        line (str): A line of the file.
        start (int): The iteration the run starts at.

    Returns:
        bool: Whole JSON, and not a train/val entry of a later iteration.
    """
    try:
        entry = json.loads(line)
    except ValueError:
        return False
    if not isinstance(entry, dict):
        return False
    later = isinstance(entry.get('iter'), int) and entry['iter'] > start
    return not (entry.get('mode') in ('train', 'val') and later)
