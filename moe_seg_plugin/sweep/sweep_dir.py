"""The sweep directory's own record (sweep.json): which family, archs,
seeds and runs it holds, so that a second command resumes it and a
directory of another family is refused."""
import json
import os
import os.path as osp
from typing import List

from ..engine.errors import SetupError
from .spec import SWEEP_FILE, RunSpec


def _union(old: list, new: list) -> list:
    return list(old) + [item for item in new if item not in old]


def record_sweep(sweep_dir: str, family, specs: List[RunSpec],
                 archs: List[str], seeds: List[int], dataset: str) -> dict:
    """Create or extend ``sweep.json`` with these runs.

    Args:
        sweep_dir (str): The sweep directory.
        family: The loaded family (``name``, ``values``, ``default``).
        specs (list[RunSpec]): The runs of this command.
        archs (list[str]), seeds (list[int]), dataset (str): As asked.

    Returns:
        dict: The record as written.

    Raises:
        SetupError: If the directory holds a sweep of another family or
            dataset.
    """
    path = osp.join(sweep_dir, SWEEP_FILE)
    record = dict(family=family.name, dataset=dataset, archs=[], seeds=[],
                  values=list(family.values), default=family.default,
                  runs=[])
    if osp.isfile(path):
        with open(path, encoding='utf-8') as file:
            old = json.load(file)
        for key in ('family', 'dataset'):
            if old.get(key) != record[key]:
                raise SetupError(
                    f'--work-dir {sweep_dir!r} holds a sweep of {key} '
                    f'{old.get(key)!r}, not {record[key]!r}; choose another '
                    'work dir for this sweep')
        record.update(archs=old.get('archs', []), seeds=old.get('seeds', []),
                      runs=old.get('runs', []))
    record['archs'] = _union(record['archs'], archs)
    record['seeds'] = _union(record['seeds'], seeds)
    record['runs'] = _union(record['runs'], [s.run_id for s in specs])
    os.makedirs(sweep_dir, exist_ok=True)
    partial = path + '.tmp'
    with open(partial, 'w', encoding='utf-8') as file:
        json.dump(record, file, indent=1)
    os.replace(partial, path)
    return record
