"""``moe_seg_plugin::`` and ``mmseg::`` in config paths: where they lead,
and that an ``mmseg::`` reference no longer reads MMSeg's metafiles."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.config import utils as config_utils
from mmengine.config.utils import (_get_external_cfg_base_path,
                                   _get_external_cfg_path)
from mmengine.utils import get_installed_path

import moe_seg_plugin  # noqa: F401  (registers the scope)
from moe_seg_plugin_startup.config_scope import (config_root,
                                                 shipped_mmseg_config)

STOCK = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'
BASE = 'mmseg::_base_/models/pspnet_r50-d8.py'


@pytest.fixture
def metafile_reads(monkeypatch) -> list:
    """MMEngine's metafile lookup, counted (it still works)."""
    calls = []
    original = config_utils._get_cfg_metainfo

    def counted(package_path, cfg_path):
        calls.append(cfg_path)
        return original(package_path, cfg_path)
    monkeypatch.setattr(config_utils, '_get_cfg_metainfo', counted)
    return calls


@pytest.mark.parametrize('reference', [STOCK, BASE])
def test_mmseg_paths_resolve_as_mmengine_does_without_the_metafiles(
        reference, metafile_reads):
    path, scope = Config._get_cfg_path(reference, 'any.py')
    assert scope == 'mmseg'
    assert metafile_reads == []
    # MMEngine's own answer: the metafiles, else its base-path fallback.
    package = get_installed_path('mmsegmentation')
    relative = reference[len('mmseg::'):]
    try:
        expected = _get_external_cfg_path(package, relative)
    except ValueError:
        expected = _get_external_cfg_base_path(package, relative)
    assert osp.samefile(path, expected)


def test_a_config_missing_from_mmseg_is_left_to_mmengine(metafile_reads):
    missing = 'mmseg::pspnet/no_such_config.py'
    assert shipped_mmseg_config(missing) is None
    with pytest.raises(FileNotFoundError):
        Config._get_cfg_path(missing, 'any.py')
    assert metafile_reads == ['pspnet/no_such_config']


def test_plugin_configs_still_resolve_and_load(metafile_reads):
    relative = 'pspnet/patchmoe_pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'
    path, scope = Config._get_cfg_path('moe_seg_plugin::' + relative, 'x.py')
    assert (path, scope) == (osp.join(config_root(), relative), 'mmseg')
    cfg = Config.fromfile(path)
    assert cfg.model.decode_head.type.startswith('PatchMoE')
    assert metafile_reads == []
