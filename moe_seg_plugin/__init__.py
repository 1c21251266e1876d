"""moe_seg_plugin: patch-wise sparse mixture-of-experts layers for MMSeg.

Importing the package (``custom_imports=dict(imports=['moe_seg_plugin'])``
in a config) makes the OpenMMLab stack usable as pinned in setup.py and
registers the plugin's modules into MMSeg's registries.
"""
import warnings

# setuptools < 81 is pinned on purpose (MMEngine resolves configs through
# pkg_resources); its deprecation notice is noise for users.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from .compat import (  # noqa: E402
    allow_mmengine_checkpoints, install_mmcv_ops_fallback,
    register_config_scope)

install_mmcv_ops_fallback()
allow_mmengine_checkpoints()
register_config_scope()

from . import engine, models, visualization  # noqa: E402,F401  (register)
from .engine.atomic_files import use_atomic_local_writes  # noqa: E402
from .engine.data_errors import name_failing_samples  # noqa: E402

use_atomic_local_writes()
name_failing_samples()
from .moe import PatchConvMoE  # noqa: E402

__version__ = '0.1.0'
__all__ = ['PatchConvMoE', '__version__']
