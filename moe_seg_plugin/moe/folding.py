"""Inference patch by patch: an expert's last convolution with its batch
norm and the slot's mixing weight folded in.

In eval a batch norm is an affine map per channel, and a mixing weight
``w >= 0`` (every weighting gives one) commutes with a ReLU. So the
weighted output of an expert whose last stage is conv -> batch norm ->
ReLU is ``relu(conv'(h))``: one convolution of the weight
``W * w * gamma / sigma`` and bias ``w * (beta + (b - mu) * gamma / sigma)``
(``sigma = sqrt(running_var + eps)``), then the ReLU written straight into
the output map. The batch norm's pass and the mix's multiplication go; the
folded weight costs one pass over the conv's weight per slot, which is
cheaper than the passes saved where the weight is smaller than the
window's output (every shipped layer but PSPNet's, whose 3x3 conv reads
1024 channels). :func:`.dispatch.run_patch_by_patch` uses it.
"""
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .experts import StageStep, run_expert
from .patches import PatchLayout

#: Pixel-wise modules that are the identity in eval mode.
EVAL_IDENTITIES = (nn.Dropout, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                   nn.Identity)


@dataclass(frozen=True)
class FoldPlan:
    """Which stage of an expert is folded.

    Attributes:
        index (int): The stage (a convolution, with a batch norm and a
            ReLU or not); the stages after it are identities in eval.
        relu (bool): Its last step is a ReLU (applied after the fold).
    """
    index: int
    relu: bool


def fold_plan(expert: nn.Module, steps: Sequence[StageStep],
              layout: PatchLayout) -> Optional[FoldPlan]:
    """The stage of ``expert`` (eval mode) to fold, or None where none can
    be folded or folding costs more than it saves (the conv's weight has
    more elements than a window's output).

    Args:
        expert (nn.Module): An expert (all are copies of one module).
        steps (list[StageStep]): Its stages.
        layout (PatchLayout): The patch layout (the outputs' size).

    Returns:
        FoldPlan, optional: What to fold.
    """
    index = len(steps) - 1
    while index > 0 and steps[index].kind == 'pixelwise' and isinstance(
            expert.get_submodule(steps[index].path), EVAL_IDENTITIES):
        index -= 1
    step = steps[index]
    module = expert.get_submodule(step.path)
    if step.kind == 'conv':
        conv, relu = module, False
    elif step.kind == 'conv_module':
        order = [part for part in module.order
                 if part == 'conv' or (part == 'norm' and module.with_norm) or
                 (part == 'act' and module.with_activation)]
        norm = module.norm if module.with_norm else None
        relu = module.with_activation
        rank = {'conv': 0, 'norm': 1, 'act': 2}
        if (order != sorted(order, key=rank.get) or
                (relu and type(module.activate) is not nn.ReLU) or
                (norm is not None and not (
                    isinstance(norm, nn.modules.batchnorm._BatchNorm)
                    and norm.running_var is not None and not norm.training))):
            return None
        conv = module.conv
    else:
        return None
    outputs = conv.out_channels * layout.rows.patch * layout.cols.patch
    return FoldPlan(index, relu) if conv.weight.numel() <= outputs else None


def run_folded(expert: nn.Module, steps: Sequence[StageStep],
               plan: FoldPlan, window: Tensor, layout: PatchLayout,
               patches: Tensor, weight: Tensor) -> Tensor:
    """``weight`` times the expert's output on ``window``, before the
    folded stage's ReLU (where ``plan.relu``).

    Args:
        expert (nn.Module): The expert (eval mode).
        steps (list[StageStep]): Its stages.
        plan (FoldPlan): Its stage to fold (:func:`fold_plan`).
        window (Tensor): (P, C, Lh, Lw) windows.
        layout (PatchLayout): The patch layout.
        patches (Tensor): (P,) their patches (for the stages' masks).
        weight (Tensor): The slot's mixing weight (0-dim, >= 0).

    Returns:
        Tensor: (P, C_out, ph, pw).
    """
    hidden = run_expert(expert, steps[:plan.index], window, layout, patches)
    step = steps[plan.index]
    if step.masked:
        hidden = hidden * layout.stage_mask(plan.index - 1, patches, hidden)
    module = expert.get_submodule(step.path)
    conv = module if step.kind == 'conv' else module.conv
    norm = (module.norm if step.kind == 'conv_module' and module.with_norm
            else None)
    scale = weight.to(conv.weight.dtype)
    shift = None if conv.bias is None else conv.bias * scale
    if norm is not None:
        gain = torch.rsqrt(norm.running_var + norm.eps)
        if norm.weight is not None:
            gain = gain * norm.weight
        centre = -norm.running_mean if shift is None else \
            conv.bias - norm.running_mean
        shift = centre * gain
        if norm.bias is not None:
            shift = shift + norm.bias
        shift, scale = shift * scale, gain * scale
    folded = conv.weight * (scale.view(-1, 1, 1, 1) if scale.dim() else scale)
    return F.conv2d(hidden, folded, shift, conv.stride, 0, conv.dilation,
                    conv.groups)


__all__ = ['FoldPlan', 'fold_plan', 'run_folded']
