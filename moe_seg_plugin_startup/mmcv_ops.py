"""Lets ``mmseg`` import on top of mmcv-lite, which has no compiled ops.

MMSeg 1.2.2 imports a few ``mmcv.ops`` names unconditionally (for example
``point_sample`` in ``mmseg/utils/mask_classification.py``), so with mmcv-lite
``import mmseg.models`` dies with ``No module named 'mmcv._ext'``. When the
compiled extension is missing, the start-up hook (see the package's
docstring) or :func:`install_mmcv_ops_fallback` puts a small stand-in module at
``mmcv.ops``:

* ``point_sample`` and ``sigmoid_focal_loss`` are written in plain torch;
* every other op name raises :class:`ModuleNotFoundError` naming the op and
  how to get it (``from mmcv.ops import X`` fails at the import, so MMSeg's
  own ``try/except ModuleNotFoundError`` guards keep working).

With full mmcv installed nothing is changed.
"""
import importlib.util
import sys
import types
import warnings
from typing import Optional

import torch.nn.functional as F
from torch import Tensor

FALLBACK_MODULE_NAME = 'mmcv.ops'
_MISSING_OP_HINT = (
    'needs mmcv\'s compiled operators (mmcv._ext), which this installation '
    '(mmcv-lite) does not have. Install full mmcv instead: '
    '`pip uninstall -y mmcv-lite && pip install "mmcv>=2.0.0rc4,<2.2.0" '
    '--no-build-isolation` (it compiles for about 10 minutes; needs '
    'setuptools<81), or pick a model that does not use this op.')


def point_sample(input: Tensor,
                 points: Tensor,
                 align_corners: bool = False,
                 **kwargs) -> Tensor:
    """Sample ``input`` at normalised points in ``[0, 1] x [0, 1]``.

    Args:
        input (Tensor): Feature map of shape (N, C, H, W).
        points (Tensor): Points of shape (N, P, 2) or (N, Hg, Wg, 2), x first.
        align_corners (bool): Passed to :func:`F.grid_sample`.

    Returns:
        Tensor: Shape (N, C, P) or (N, C, Hg, Wg).
    """
    flat = points.dim() == 3
    grid = points.unsqueeze(2) if flat else points
    out = F.grid_sample(
        input, grid * 2.0 - 1.0, align_corners=align_corners, **kwargs)
    return out.squeeze(3) if flat else out


def sigmoid_focal_loss(input: Tensor,
                       target: Tensor,
                       gamma: float = 2.0,
                       alpha: float = 0.25,
                       weight: Optional[Tensor] = None,
                       reduction: str = 'mean') -> Tensor:
    """Sigmoid focal loss with the semantics of mmcv's compiled kernel.

    Args:
        input (Tensor): Logits of shape (P, C).
        target (Tensor): Class index per row, shape (P,); ``C`` means none.
        gamma (float): Focusing exponent.
        alpha (float): Weight of the positive term.
        weight (Tensor, optional): Per-class weight (C,), applied by target.
        reduction (str): 'none', 'mean' (sum / P) or 'sum'.

    Returns:
        Tensor: The loss, elementwise (P, C) for 'none'.
    """
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', "
                         f'got {reduction!r}')
    num_classes = input.size(1)
    positive = F.one_hot(target, num_classes + 1)[:, :num_classes]
    positive = positive.to(input.dtype)
    prob = input.sigmoid()
    pos_term = -alpha * (1 - prob).pow(gamma) * F.logsigmoid(input)
    neg_term = -(1 - alpha) * prob.pow(gamma) * F.logsigmoid(-input)
    loss = positive * pos_term + (1 - positive) * neg_term
    if weight is not None:
        row_weight = weight.new_zeros(target.shape)
        in_range = target < num_classes
        row_weight[in_range] = weight[target[in_range]]
        loss = loss * row_weight.unsqueeze(1)
    if reduction == 'mean':
        return loss.sum() / input.size(0)
    if reduction == 'sum':
        return loss.sum()
    return loss


def _missing_op(name: str):
    if name.startswith('__'):
        raise AttributeError(name)
    raise ModuleNotFoundError(
        f'mmcv.ops.{name} {_MISSING_OP_HINT}', name='mmcv._ext')


def compiled_ops_available() -> bool:
    """Whether mmcv's compiled extension ``mmcv._ext`` can be imported."""
    return importlib.util.find_spec('mmcv._ext') is not None


def build_fallback_module() -> types.ModuleType:
    """Make the stand-in ``mmcv.ops`` module (not yet installed)."""
    module = types.ModuleType(
        FALLBACK_MODULE_NAME,
        'Pure-torch stand-in for mmcv.ops (mmcv-lite); see '
        'moe_seg_plugin_startup.mmcv_ops.')
    module.point_sample = point_sample
    module.sigmoid_focal_loss = sigmoid_focal_loss
    module.__getattr__ = _missing_op
    module.IS_MOE_SEG_FALLBACK = True
    return module


def quiet_mmcv_warnings() -> None:
    """Silence mmcv's import-time warning about the missing deformable
    attention op; the stand-in names that op in its own error if a model
    ever uses it."""
    warnings.filterwarnings(
        'ignore', message='Fail to import ``MultiScaleDeformableAttention``')


def install_mmcv_ops_fallback() -> bool:
    """Install the stand-in ``mmcv.ops`` when mmcv has no compiled ops.

    Returns:
        bool: True if the stand-in is in place after the call, False when
        the real ``mmcv.ops`` is used.
    """
    current = sys.modules.get(FALLBACK_MODULE_NAME)
    if current is not None:
        return bool(getattr(current, 'IS_MOE_SEG_FALLBACK', False))
    try:
        import mmcv
    except ImportError as exc:
        raise ImportError(
            'moe_seg_plugin needs mmcv 2.0.x-2.1.x. Install it with '
            '`pip install "moe_seg_plugin[lite]"` (mmcv-lite, no compiled '
            'ops) or `pip install "mmcv>=2.0.0rc4,<2.2.0"` (full).') from exc
    if compiled_ops_available():
        return False
    module = build_fallback_module()
    quiet_mmcv_warnings()
    sys.modules[FALLBACK_MODULE_NAME] = module
    mmcv.ops = module
    return True
