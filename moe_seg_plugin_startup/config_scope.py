"""Lets configs inherit ours as ``moe_seg_plugin::path/to/config.py``.

MMEngine resolves ``mmseg::`` through a fixed table of OpenMMLab packages and
their installed ``.mim/configs`` folders; it knows nothing of plugins, and
with editable installs it looks in the wrong place. Importing the plugin
teaches ``Config`` one more prefix: ``moe_seg_plugin::X`` is ``X`` under the
plugin's configs folder, loaded in MMSeg's registry scope (all our modules
live in MMSeg's registries). It also finds ``mmseg::X`` directly when MMSeg
ships ``X`` in its ``.mim/configs``: MMEngine would read all of MMSeg's
metafiles (about 50 YAML files, 0.15 s) for every such reference, which made
reading one of our configs take most of a second; any other ``mmseg::``
path is left to MMEngine. The start-up hook applies this as soon as
``mmengine.config`` is imported, so MMSeg's own tools read such configs too;
with the hook switched off it takes effect when ``moe_seg_plugin`` is
imported.
"""
import importlib.util
import os.path as osp
from typing import Optional, Tuple

PREFIX = 'moe_seg_plugin::'
MMSEG_PREFIX = 'mmseg::'


def config_root() -> str:
    """The folder holding the plugin's configs.

    An installed (non-editable) package carries them in ``.mim/configs``;
    a source checkout has them in ``configs/`` beside the package.
    """
    spec = importlib.util.find_spec('moe_seg_plugin')  # does not import it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            'moe_seg_plugin is not installed: `pip install -e ".[lite]"` '
            'in its checkout')
    package = osp.abspath(list(spec.submodule_search_locations)[0])
    shipped = osp.join(package, '.mim', 'configs')
    if osp.isdir(shipped):
        return shipped
    return osp.join(osp.dirname(package), 'configs')


def resolve(cfg_path: str) -> str:
    """Absolute path of ``moe_seg_plugin::<relative path>``."""
    relative = cfg_path[len(PREFIX):]
    path = osp.join(config_root(), relative)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{cfg_path!r}: no config {relative!r} in the plugin\'s configs '
            f'folder {config_root()}')
    return path


def shipped_mmseg_config(cfg_path: str) -> Optional[str]:
    """Absolute path of ``mmseg::<relative path>`` in MMSeg's installed
    ``.mim/configs``, or None if it is not there (MMSeg is not imported)."""
    spec = importlib.util.find_spec('mmseg')
    if spec is None or not spec.submodule_search_locations:
        return None
    package = list(spec.submodule_search_locations)[0]
    path = osp.join(package, '.mim', 'configs', cfg_path[len(MMSEG_PREFIX):])
    return path if osp.isfile(path) else None


def register_config_scope() -> bool:
    """Teach MMEngine's ``Config`` the ``moe_seg_plugin::`` prefix (once).

    Returns:
        bool: True if it was added by this call.
    """
    from mmengine.config import Config

    original = Config._get_cfg_path
    if getattr(original, 'moe_seg_plugin_scope', False):
        return False

    def _get_cfg_path(cfg_path: str,
                      filename: str) -> Tuple[str, Optional[str]]:
        if cfg_path.startswith(PREFIX):
            return resolve(cfg_path), 'mmseg'
        if cfg_path.startswith(MMSEG_PREFIX):
            shipped = shipped_mmseg_config(cfg_path)
            if shipped is not None:
                return shipped, 'mmseg'
        return original(cfg_path, filename)

    _get_cfg_path.moe_seg_plugin_scope = True
    Config._get_cfg_path = staticmethod(_get_cfg_path)
    return True
