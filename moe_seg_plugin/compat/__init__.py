"""Compatibility fixes for the OpenMMLab stack pinned in setup.py.

The mmcv-lite stand-in and the ``moe_seg_plugin::`` config prefix live in
the ``moe_seg_plugin_startup`` package, which the start-up hook loads
without importing this one; they are applied again here so that importing
the plugin is enough where the hook is switched off.
"""
from moe_seg_plugin_startup.config_scope import register_config_scope
from moe_seg_plugin_startup.mmcv_ops import (compiled_ops_available,
                                             install_mmcv_ops_fallback)

from .checkpoint import allow_mmengine_checkpoints

__all__ = [
    'allow_mmengine_checkpoints', 'compiled_ops_available',
    'install_mmcv_ops_fallback', 'register_config_scope'
]
