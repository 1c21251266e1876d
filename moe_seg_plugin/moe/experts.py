"""Experts: copies of the replaced module, and how they run on windows.

An expert runs on windows (gathered by :func:`.dispatch.gather_windows`,
laid out by :mod:`.patches`) as a chain of stages (:mod:`.geometry`) whose
convolutions use no padding: a window holds exactly the input its patch's
outputs read, zeros included where the dense layer pads the map. A stage after the first that pads reads, in the dense layer,
zeros around the previous stage's output; there the previous stage's window
output is multiplied by a mask that is 0 outside that dense output.
"""
import copy
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .geometry import conv_stages, is_conv_module

if TYPE_CHECKING:
    from .patches import PatchLayout

EXPERT_INITS = ('random', 'copy')


def reinitialise(module: nn.Module) -> nn.Module:
    """Give ``module`` fresh weights, as a newly built one would have.

    Every submodule with ``reset_parameters`` is reset first; then modules
    whose own class defines ``init_weights`` (mmcv's ConvModule: Kaiming for
    the conv, constant for the norm) apply it on top.
    """
    for sub in module.modules():
        if hasattr(sub, 'reset_parameters'):
            sub.reset_parameters()
    for sub in module.modules():
        if 'init_weights' in type(sub).__dict__:
            sub.init_weights()
    return module


@torch.no_grad()
def add_relative_noise(tensor: Tensor, scale: float) -> Tensor:
    """Add, in place, Gaussian noise of ``scale`` x the tensor's spread."""
    if scale == 0:
        return tensor
    spread = (tensor.std(unbiased=False)
              if tensor.numel() > 1 else tensor.abs().mean())
    noise = torch.randn(tensor.shape, dtype=tensor.dtype)
    return tensor.add_(noise.to(tensor.device) * scale *
                       spread.clamp_min(1e-8))


def perturb(module: nn.Module, scale: float) -> nn.Module:
    """Add relative noise of ``scale`` to every parameter of ``module``."""
    for param in module.parameters():
        add_relative_noise(param.data, scale)
    return module


def make_experts(module: nn.Module, count: int, init: str,
                 init_noise: float) -> nn.ModuleList:
    """``count`` copies of ``module``.

    Args:
        module (nn.Module): The replaced module.
        count (int): Number of experts.
        init (str): 'random' (independent fresh weights) or 'copy' (the
            module's weights plus noise of ``init_noise`` relative size).
        init_noise (float): Relative noise for 'copy'.

    Returns:
        nn.ModuleList: The experts.
    """
    experts = nn.ModuleList()
    for _ in range(count):
        expert = copy.deepcopy(module)
        if init == 'random':
            reinitialise(expert)
        else:
            perturb(expert, init_noise)
        experts.append(expert)
    return experts


@dataclass(frozen=True)
class StageStep:
    """One stage of an expert, found again in each copy by its path.

    Attributes:
        path (str): Dotted path of the stage module in the expert ('' for
            the expert itself).
        kind (str): 'conv' (``nn.Conv2d``), 'conv_module' (an mmcv
            ConvModule) or 'pixelwise'.
        masked (bool): Its input is masked first (it pads, and it is not
            the first stage).
        ends_in_relu (bool): A ConvModule whose last step is a ReLU after
            its convolution or batch norm, neither of which keeps its
            output for backward: the mix can apply that ReLU itself
            (``run_stage(..., relu=False)``).
    """
    path: str
    kind: str
    masked: bool
    ends_in_relu: bool = False


def stage_steps(module: nn.Module) -> List[StageStep]:
    """The stages of ``module`` (an expert or the module it copies), as
    paths that hold in every copy of it."""
    paths = {id(sub): path for path, sub in module.named_modules()}
    steps = []
    for index, stage in enumerate(conv_stages(module)):
        sub = stage.module
        kind = ('conv' if isinstance(sub, nn.Conv2d) else
                'conv_module' if is_conv_module(sub) else 'pixelwise')
        ends_in_relu = (
            kind == 'conv_module' and tuple(sub.order)[-1] == 'act'
            and sub.with_activation and type(sub.activate) is nn.ReLU
            and (not sub.with_norm or isinstance(
                sub.norm, nn.modules.batchnorm._BatchNorm)))
        steps.append(StageStep(paths[id(sub)], kind,
                               index > 0 and stage.pads, ends_in_relu))
    return steps


def run_stage(module: nn.Module, kind: str, x: Tensor,
              relu: bool = True) -> Tensor:
    """One stage on windows: its convolution without padding, everything
    else as the module does it (a ConvModule's norm and activation in its
    ``order``; with ``relu=False`` without a last ReLU, for the mix to apply:
    ``StageStep.ends_in_relu``)."""
    if kind == 'pixelwise':
        return module(x)
    if kind == 'conv':
        return F.conv2d(x, module.weight, module.bias, module.stride, 0,
                        module.dilation, module.groups)
    for step in module.order:
        if step == 'conv':
            conv = module.conv
            x = F.conv2d(x, conv.weight, conv.bias, conv.stride, 0,
                         conv.dilation, conv.groups)
        elif step == 'norm' and module.with_norm:
            x = module.norm(x)
        elif step == 'act' and module.with_activation and relu:
            x = module.activate(x)
    return x


def run_expert(expert: nn.Module, steps: Sequence[StageStep],
               windows: Tensor, layout: 'PatchLayout', patches: Tensor,
               relu: bool = True) -> Tensor:
    """An expert's outputs (P, C_out, ph, pw) on its windows (P, C, Lh, Lw).

    Args:
        expert (nn.Module): The expert.
        steps (list[StageStep]): Its stages (:func:`stage_steps`).
        windows (Tensor): Its patches' windows.
        layout (PatchLayout): The patch layout.
        patches (Tensor): (P,) the windows' patches, whose masks a
            ``masked`` stage's input is multiplied by
            (:meth:`PatchLayout.stage_mask`).
        relu (bool): False: leave out the last stage's final ReLU (where
            ``ends_in_relu``), which the caller applies.

    Returns:
        Tensor: The patches' outputs, one per window.
    """
    out = windows
    last = len(steps) - 1
    for index, step in enumerate(steps):
        if step.masked:
            out = out * layout.stage_mask(index - 1, patches, out)
        out = run_stage(expert.get_submodule(step.path), step.kind, out,
                        relu or index < last)
    return out


def check_runs_on_windows(module: nn.Module) -> None:
    """Refuse convolutions whose forward is not ``nn.Conv2d``'s: experts
    run them as ``F.conv2d`` with their weights, without padding."""
    for stage in conv_stages(module):
        conv = stage.module if isinstance(stage.module, nn.Conv2d) else \
            getattr(stage.module, 'conv', None)
        if conv is None:
            continue
        forward = type(conv).forward
        plain = {nn.Conv2d.forward}
        wrapper = _mmcv_conv2d_forward()
        if wrapper is not None:
            plain.add(wrapper)
        if forward not in plain:
            raise ValueError(
                f'module: {type(conv).__name__} computes its convolution in '
                'its own forward (e.g. standardised weights); PatchConvMoE '
                'runs experts as plain nn.Conv2d convolutions')


def _mmcv_conv2d_forward():
    """mmcv's ``Conv2d`` wrapper's forward (nn.Conv2d's, plus empty-input
    handling), if mmcv is loaded."""
    wrappers = sys.modules.get('mmcv.cnn.bricks.wrappers')
    conv = getattr(wrappers, 'Conv2d', None)
    return getattr(conv, 'forward', None)
