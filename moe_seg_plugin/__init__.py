"""moe_seg_plugin: patch-wise sparse mixture-of-experts layers for MMSeg.

Importing the package (``custom_imports=dict(imports=['moe_seg_plugin'])``
in a config) makes the OpenMMLab stack usable as pinned in setup.py and
registers the plugin's modules into MMSeg's registries.
"""
from .compat import allow_mmengine_checkpoints, install_mmcv_ops_fallback

install_mmcv_ops_fallback()
allow_mmengine_checkpoints()

from . import models  # noqa: E402,F401  (registers into mmseg.registry)
from .moe import PatchConvMoE  # noqa: E402

__version__ = '0.1.0'
__all__ = ['PatchConvMoE', '__version__']
