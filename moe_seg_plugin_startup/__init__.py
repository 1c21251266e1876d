"""Makes MMSeg's own tools and APIs work with the plugin from interpreter
start-up.

Installing the plugin puts ``moe_seg_plugin_startup.pth`` in site-packages;
Python runs it when it starts and it calls :func:`install`, which adds one
import hook (a :data:`sys.meta_path` finder). The hook imports nothing itself
(this module uses the standard library only) and acts on three imports:

* ``mmcv.ops`` when mmcv has no compiled extension (mmcv-lite): the import
  gets the pure-torch stand-in of :mod:`moe_seg_plugin_startup.mmcv_ops`, so
  ``from mmseg.apis import init_model`` and MMSeg's shipped tools import.
  With full mmcv the hook steps aside and the real ``mmcv.ops`` loads.
* ``mmengine.config``: once it has loaded, ``Config`` also resolves
  ``moe_seg_plugin::path/to/config.py`` (see :mod:`.config_scope`).
* ``mmpretrain.models`` (mmpretrain's model zoo, imported for a
  ``type='mmpretrain.*'`` backbone): if it fails because torchvision is
  missing or does not fit torch, the error names the plugin's
  ``mmpretrain`` extra and its install command (see
  :mod:`.mmpretrain_extra`).

Set the environment variable ``MOE_SEG_PLUGIN_STARTUP=0`` to switch the hook
off; ``import moe_seg_plugin`` (what a config's ``custom_imports`` does)
then still applies both fixes, but only from that import on.

This package is separate from ``moe_seg_plugin`` because importing that one
registers modules into MMSeg, which imports ``mmcv.ops``: the hook must be
importable without it.
"""
import importlib.abc
import importlib.machinery
import os
import sys
from types import ModuleType
from typing import Callable, Dict, Optional, Sequence

from .loaders import WrappedLoader
from .mmpretrain_extra import ZOO_MODULE, ExplainZooImport

DISABLE_ENV = 'MOE_SEG_PLUGIN_STARTUP'


def enabled() -> bool:
    """Whether the start-up hook may act (``MOE_SEG_PLUGIN_STARTUP`` is not
    ``0``, ``false``, ``no`` or ``off``)."""
    value = os.environ.get(DISABLE_ENV, '1').strip().lower()
    return value not in ('0', 'false', 'no', 'off')


def _compiled_mmcv_ops_exist() -> bool:
    spec_finder = importlib.machinery.PathFinder
    mmcv = sys.modules.get('mmcv')
    paths = getattr(mmcv, '__path__', None)
    return paths is not None and spec_finder.find_spec(
        'mmcv._ext', paths) is not None


class _FallbackOpsLoader(importlib.abc.Loader):
    """Loads the pure-torch stand-in in place of ``mmcv.ops``."""

    def create_module(self, spec) -> ModuleType:
        from .mmcv_ops import build_fallback_module, quiet_mmcv_warnings
        quiet_mmcv_warnings()
        return build_fallback_module()

    def exec_module(self, module: ModuleType) -> None:
        mmcv = sys.modules.get('mmcv')
        if mmcv is not None:
            mmcv.ops = module


class _RunAfterLoad(WrappedLoader):
    """Wraps a module's own loader and calls ``after`` once it has run."""

    def __init__(self, loader: importlib.abc.Loader,
                 after: Callable[[], object]):
        super().__init__(loader)
        self.after = after

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        self.after()


def _register_config_scope() -> None:
    from .config_scope import register_config_scope
    register_config_scope()


#: Modules whose own loader the hook wraps, and how.
_WRAPPED: Dict[str, Callable[[importlib.abc.Loader], WrappedLoader]] = {
    'mmengine.config': lambda loader: _RunAfterLoad(
        loader, _register_config_scope),
    ZOO_MODULE: ExplainZooImport,
}


class OpenMMLabStartupHook(importlib.abc.MetaPathFinder):
    """The :data:`sys.meta_path` finder :func:`install` adds."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]],
                  target: Optional[ModuleType] = None):
        if fullname == 'mmcv.ops':
            if _compiled_mmcv_ops_exist():
                return None
            return importlib.machinery.ModuleSpec(fullname,
                                                  _FallbackOpsLoader())
        wrap = _WRAPPED.get(fullname)
        if wrap is None:
            return None
        spec = self._spec_from_other_finders(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = wrap(spec.loader)
        return spec

    def _spec_from_other_finders(self, fullname, path, target):
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, 'find_spec'):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None


def install() -> bool:
    """Add the start-up hook to :data:`sys.meta_path` (once).

    Returns:
        bool: True if the hook is in place after the call; False when
        ``MOE_SEG_PLUGIN_STARTUP=0`` switches it off.
    """
    if not enabled():
        return False
    if not any(isinstance(f, OpenMMLabStartupHook) for f in sys.meta_path):
        sys.meta_path.insert(0, OpenMMLabStartupHook())
    if 'mmengine.config' in sys.modules:
        _register_config_scope()
    return True
