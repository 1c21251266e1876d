"""A run made with other settings is refused, never resumed or skipped as
if it were the run the command asks for."""
import json

import pytest

from moe_seg_plugin.engine.errors import SetupError
from moe_seg_plugin.sweep.family import expand, load_family
from moe_seg_plugin.sweep.sweep_dir import (SETTINGS_FILE,
                                            check_run_settings, run_settings)


def _specs(values=('top1', )):
    return expand(load_family('top_k'), ['enet'], [0], 'street',
                  list(values))


def test_new_runs_get_their_settings_recorded(tmp_path):
    specs = _specs()
    check_run_settings(specs, str(tmp_path), {'train_cfg.max_iters': 300})
    for spec in specs:
        stored = json.loads(
            (tmp_path / 'runs' / spec.run_id / SETTINGS_FILE).read_text())
        assert stored == run_settings(spec, {'train_cfg.max_iters': 300})
        assert not stored['config'].startswith('/')  # machine-independent
    top1 = [s for s in specs if s.value == 'top1'][0]
    assert run_settings(top1, None)['options'] == {
        'top_k': 1, 'weighting': 'gate_prob'}


def test_the_same_command_again_passes(tmp_path):
    check_run_settings(_specs(), str(tmp_path), {'train_cfg.max_iters': 3})
    check_run_settings(_specs(), str(tmp_path), {'train_cfg.max_iters': 3})


def test_other_cfg_options_are_refused_with_the_difference(tmp_path):
    check_run_settings(_specs(), str(tmp_path), {'train_cfg.max_iters': 3})
    with pytest.raises(SetupError, match=r"were made with other settings "
                       r"\(enet__stock__seed0: cfg_options.train_cfg."
                       r"max_iters: 3 then, 600 now\); use another "
                       r'--work-dir, or delete runs/<run>'):
        check_run_settings(_specs(), str(tmp_path),
                           {'train_cfg.max_iters': 600})


def test_a_changed_family_value_is_refused(tmp_path):
    specs = _specs()
    check_run_settings(specs, str(tmp_path), None)
    top1 = [s for s in specs if s.value == 'top1'][0]
    top1.options = dict(top1.options, weighting='renormalized')
    with pytest.raises(SetupError, match=r"enet__top1__seed0: options.weighting: 'gate_prob' then, "
                       r"'renormalized' now"):
        check_run_settings([top1], str(tmp_path), None)


def test_a_run_folder_of_an_earlier_version_is_accepted(tmp_path):
    specs = _specs()
    for spec in specs:  # a run folder without settings.json
        (tmp_path / 'runs' / spec.run_id).mkdir(parents=True)
    check_run_settings(specs, str(tmp_path), None)
    assert all((tmp_path / 'runs' / s.run_id / SETTINGS_FILE).is_file()
               for s in specs)
