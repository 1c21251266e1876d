"""Compatibility fixes for the OpenMMLab stack pinned in setup.py."""
from .checkpoint import allow_mmengine_checkpoints
from .config_scope import register_config_scope
from .mmcv_ops import compiled_ops_available, install_mmcv_ops_fallback

__all__ = [
    'allow_mmengine_checkpoints', 'compiled_ops_available',
    'install_mmcv_ops_fallback', 'register_config_scope'
]
