"""GridCheckHook: the grid check of runs started by MMSeg's own tools,
added to runs as the routing statistics hook is (the MoE configs list
it)."""
import pathlib
from types import SimpleNamespace

import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.models import SegTTAModel
from mmseg.registry import HOOKS
from torch import nn

from moe_seg_plugin.engine import (GridCheckHook, RoutingStatsHook,
                                   SetupError, load_config)
from moe_seg_plugin.moe import PatchConvMoE

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'configs/erfnet/'
             'patchmoe_erfnet_fcn_1xb4-1k_street-cityscapes-256x256.py')


class _Segmentor(nn.Module):
    """One MoE layer with a 4x4 grid on a map the size of the image, and
    the parts of a segmentor the check reads (crop size, ``_forward``)."""

    def __init__(self, crop_size):
        super().__init__()
        self.layer = PatchConvMoE(nn.Conv2d(3, 2, 1), num_experts=2,
                                  top_k=1, grid=(4, 4))
        self.data_preprocessor = SimpleNamespace(
            size=crop_size, mean=torch.zeros(3))

    def _forward(self, inputs):
        return self.layer(inputs)

    def test_step(self, data):
        return self._forward(data)


def _runner(model):
    return SimpleNamespace(model=model)


def test_refuses_a_grid_larger_than_the_map():
    model = _Segmentor((3, 8))
    with pytest.raises(SetupError,
                       match=r"^layer: grid \(4, 4\) does not fit the "
                       r"layer's output \(3, 8\) at the crop size \(3, 8\)"):
        GridCheckHook().before_run(_runner(model))


def test_passes_a_grid_that_fits_once_per_model():
    model = _Segmentor((8, 8))
    hook = GridCheckHook()
    hook.before_run(_runner(model))
    assert model._moe_grids_checked
    model.data_preprocessor.size = (3, 3)  # not looked at again
    hook.before_run(_runner(model))


def test_checks_inside_test_time_augmentation():
    model = _Segmentor((3, 8))
    with pytest.raises(SetupError, match='does not fit'):
        GridCheckHook().before_run(_runner(SegTTAModel(module=model)))


def test_routing_stats_hook_leaves_the_check_to_it(tmp_path):
    model = _Segmentor((3, 8))
    runner = SimpleNamespace(model=model)
    RoutingStatsHook().before_run(runner)  # no error: not its job
    assert not getattr(model, '_moe_grids_checked', False)


def test_registered_and_listed_by_the_moe_configs():
    init_default_scope('mmseg')
    hook = HOOKS.build(dict(type='GridCheckHook'))
    assert isinstance(hook, GridCheckHook)
    assert hook.priority == 'VERY_HIGH'
    assert hook.get_triggered_stages() == ['before_run']
    types = [h['type'] for h in load_config(CONFIG).custom_hooks]
    assert 'GridCheckHook' in types and 'RoutingStatsHook' in types
