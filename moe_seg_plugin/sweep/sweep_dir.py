"""The sweep directory's own record (sweep.json): which family, archs,
seeds and runs it holds, so that a second command resumes it and a
directory of another family is refused; and each run's settings
(``runs/<run>/settings.json``), so that a run made with other settings is
never resumed or skipped as if it were this one."""
import json
import os
import os.path as osp
from typing import Dict, List, Optional

from ..engine.errors import SetupError
from .files import make_folder, read_json, write_json
from .spec import SWEEP_FILE, RunSpec

#: What sweep.json holds, for messages.
SWEEP_RECORD = ('the record tools/analysis_tools/sweep.py writes (family, '
                'dataset, runs)')


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
        SetupError: If ``sweep_dir`` cannot be a folder, or holds a sweep
            of another family or dataset, or a sweep.json that cannot be
            read.
    """
    make_folder(sweep_dir, '--work-dir')
    path = osp.join(sweep_dir, SWEEP_FILE)
    record = dict(family=family.name, dataset=dataset, archs=[], seeds=[],
                  values=list(family.values), default=family.default,
                  runs=[])
    if osp.lexists(path):
        old = read_json(path, SWEEP_RECORD)
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
    write_json(path, record)
    return record


SETTINGS_FILE = 'settings.json'


def run_settings(spec: RunSpec, cfg_options: Optional[dict]) -> dict:
    """What a run is made of, in JSON form: its config (relative to the
    plugin's configs folder, so the same run matches on another machine),
    the family value's settings and the command's ``--cfg-options``."""
    from moe_seg_plugin_startup.config_scope import config_root
    config = osp.abspath(spec.config)
    root = config_root()
    if config.startswith(root + os.sep):
        config = osp.relpath(config, root)
    settings = dict(config=config, options=spec.options,
                    cfg_options=dict(cfg_options or {}))
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


def _differences(stored: dict, current: dict, prefix: str = '') -> List[str]:
    """'key: old then, new now' for each differing key (nested dicts by
    their own keys, so one changed option is named alone)."""
    found = []
    for key in sorted(set(stored) | set(current)):
        old, new = stored.get(key), current.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            found += _differences(old, new, f'{prefix}{key}.')
        else:
            found.append(f'{prefix}{key}: {old!r} then, {new!r} now')
    return found


def check_run_settings(specs: List[RunSpec], sweep_dir: str,
                       cfg_options: Optional[dict]) -> None:
    """Refuse runs that exist with other settings; record new runs'.

    A run folder without a settings file (a sweep of an earlier version)
    is taken as made with the current settings.

    Raises:
        SetupError: Naming the first changed run, what changed and how to
            go on.
    """
    changed: Dict[str, List[str]] = {}
    for spec in specs:
        path = osp.join(spec.work_dir(sweep_dir), SETTINGS_FILE)
        if not osp.lexists(path):
            continue
        stored = read_json(path, "the run's settings (config, options, "
                           'cfg_options); delete runs/<run> to run it again')
        differences = _differences(stored, run_settings(spec, cfg_options))
        if differences:
            changed[spec.run_id] = differences
    if changed:
        first = next(iter(changed))
        raise SetupError(
            f'{len(changed)} run(s) in {sweep_dir} were made with other '
            f'settings ({first}: {"; ".join(changed[first])}); use another '
            '--work-dir, or delete runs/<run> to run them again: '
            f'{sorted(changed)}')
    for spec in specs:
        path = osp.join(spec.work_dir(sweep_dir), SETTINGS_FILE)
        if not osp.lexists(path):
            os.makedirs(osp.dirname(path), exist_ok=True)
            write_json(path, run_settings(spec, cfg_options))
