"""Compatibility fixes for the OpenMMLab stack pinned in setup.py."""
from .checkpoint import allow_mmengine_checkpoints
from .mmcv_ops import compiled_ops_available, install_mmcv_ops_fallback

__all__ = [
    'allow_mmengine_checkpoints', 'compiled_ops_available',
    'install_mmcv_ops_fallback'
]
