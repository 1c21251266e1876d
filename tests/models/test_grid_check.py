"""Grids are checked against each MoE layer's map at the crop size when
the model is built (shape propagation, no compute)."""
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import moe_seg_plugin  # noqa: F401
from moe_seg_plugin.models.grid_check import (check_grids_fit,
                                              moe_input_sizes)

CONFIG = 'configs/pspnet/patchmoe_pspnet_r18-d8_1xb4-1k_street-cityscapes-256x256.py'


@pytest.fixture(scope='module')
def cfg():
    init_default_scope('mmseg')
    return Config.fromfile(CONFIG)


def _model(cfg, grid):
    model_cfg = cfg.model.copy()
    model_cfg.decode_head.moe.grid = grid
    return MODELS.build(model_cfg)


def test_input_sizes_at_the_crop_size(cfg):
    model = _model(cfg, (3, 3))
    # PSPNet R18-d8: the bottleneck reads the 1/8 map.
    assert moe_input_sizes(model, (256, 256)) == {
        'decode_head.bottleneck': (32, 32)}
    check_grids_fit(model, (256, 256))


def test_probe_leaves_the_model_as_it_was(cfg):
    model = _model(cfg, (3, 3)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    moe_input_sizes(model, (256, 256))
    assert model.training
    layer = model.decode_head.bottleneck
    assert 'forward' not in vars(layer)
    for key, value in model.state_dict().items():
        assert value.equal(before[key]), key


def test_grid_larger_than_the_map_at_the_crop_size_is_refused(cfg):
    model = _model(cfg, (40, 8))
    with pytest.raises(ValueError,
                       match=r"decode_head.bottleneck: grid \(40, 8\) does "
                       r"not fit the layer's output \(32, 32\) at the crop "
                       r'size \(256, 256\); use a grid of at most \(32, 32\)'):
        check_grids_fit(model, (256, 256))


def test_no_crop_size_skips(cfg):
    check_grids_fit(_model(cfg, (40, 8)), None)


def _patch_model(cfg, patch_size):
    model_cfg = cfg.model.copy()
    model_cfg.decode_head.moe.grid = None
    model_cfg.decode_head.moe.patch_size = patch_size
    return MODELS.build(model_cfg)


def test_patch_size_larger_than_the_map_at_the_crop_size_is_refused(cfg):
    """As a grid too large: at run time it would be one patch along that
    axis, so at the crop size it is refused with the same message."""
    model = _patch_model(cfg, (40, 8))
    with pytest.raises(ValueError,
                       match=r"^decode_head.bottleneck: patch_size \(40, 8\) "
                       r"does not fit the layer's output \(32, 32\) at the "
                       r'crop size \(256, 256\); use a patch_size of at most '
                       r'\(32, 32\) \(rows, cols\), or grid$'):
        check_grids_fit(model, (256, 256))


def test_patch_size_that_fits_passes(cfg):
    check_grids_fit(_patch_model(cfg, (32, 8)), (256, 256))
