"""Experts: copies of the replaced module, and how they run on windows."""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .geometry import Stage, conv_stages
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


def run_expert(module: nn.Module,
               windows: Tensor,
               layout: PatchLayout,
               patches: Optional[Sequence[int]],
               stagewise: bool,
               crop: bool = True,
               stages: Optional[Sequence[Stage]] = None) -> Tensor:
    """Expert outputs (P, C_out, ph, pw) for windows (P, C, Lh, Lw).

    When a stage after the first reads zero padding (``stagewise``), the
    windows run stage by stage and, before such a stage, positions outside
    the dense intermediate map are zeroed, as the dense layer's padding
    would be; otherwise the expert runs in one call.

    Args:
        module (nn.Module): The expert.
        windows (Tensor): Its patches' windows.
        layout (PatchLayout): Where the windows lie.
        patches (list[int], optional): Patch index of each window (None:
            the windows are all patches in order).
        stagewise (bool): Run stage by stage with masking.
        crop (bool): Crop the halo's outputs. Default: True.
        stages (list[Stage], optional): ``conv_stages(module)``, if known.

    Returns:
        Tensor: The patches' own outputs (with ``crop=False``, the outputs
        of the whole windows).
    """
    if not stagewise:
        out = module(windows)
        return layout.crop(out) if crop else out
    out = windows
    for index, stage in enumerate(stages or conv_stages(module)):
        if index > 0 and stage.pads:
            mask = layout.stage_mask(index - 1, tuple(out.shape[2:]),
                                     out.device, out.dtype)
            out = out * _window_masks(mask, patches, out.shape[0])
        out = stage.module(out)
    return layout.crop(out) if crop else out


def _window_masks(mask: Tensor, patches: Optional[Sequence[int]],
                  windows: int) -> Tensor:
    """The rows of a per-cell ``mask`` (cells, 1, h, w) for each of
    ``windows`` windows (``patches`` None: all patches in order); one
    window's is a view (no index op, the common case with many experts)."""
    cells = mask.shape[0]
    if patches is None:
        index = torch.arange(windows, device=mask.device) % cells
    elif not patches:  # an expert run on no window (collective norms)
        return mask[:0]
    elif len(patches) == 1:
        cell = patches[0] % cells
        return mask[cell:cell + 1]
    else:
        index = torch.tensor([p % cells for p in patches], device=mask.device)
    return mask.index_select(0, index)


def needs_stagewise(stages: Sequence[Stage]) -> bool:
    """Whether a stage after the first reads zero padding."""
    return any(stage.pads for stage in stages[1:])


def first_padded_conv(
        module: nn.Module,
        stages: Optional[Sequence[Stage]] = None) -> Optional[nn.Conv2d]:
    """The convolution of ``module``'s first stage, if it is the only stage
    that reads zero padding (None otherwise). ``stages``:
    ``conv_stages(module)``, if known."""
    stages = stages or conv_stages(module)
    if needs_stagewise(stages) or not stages[0].pads:
        return None
    first = stages[0].module
    conv = first if isinstance(first, nn.Conv2d) else getattr(
        first, 'conv', None)
    return conv if isinstance(conv, nn.Conv2d) else None


def run_unpadded(module: nn.Module,
                 windows: Tensor,
                 stages: Optional[Sequence[Stage]] = None) -> Tensor:
    """``module`` on tight windows, its first convolution unpadded.

    A window then yields exactly its patch's outputs: none for the halo,
    which would be cropped anyway. The padding is set back afterwards.

    Args:
        module (nn.Module): An expert with :func:`first_padded_conv`.
        windows (Tensor): Tight windows (P, C, lh, lw).
        stages (list[Stage], optional): ``conv_stages(module)``, if known.

    Returns:
        Tensor: The patches' outputs (P, C_out, ph, pw).
    """
    conv = first_padded_conv(module, stages)
    padding = conv.padding
    conv.padding = (0, 0)
    try:
        return module(windows)
    finally:
        conv.padding = padding


class StageCache:
    """``conv_stages`` of experts, read once and again only when one of the
    stage modules has been swapped out of its place (e.g. a batch norm
    replaced by SyncBatchNorm).

    Reading the chain costs more than running a small expert on one window,
    and the layer runs each chosen expert every forward pass; checking that
    the stages are still in place is one dict lookup per link.
    """

    def __init__(self) -> None:
        self._entries: Dict[int, tuple] = {}

    def __call__(self, module: nn.Module) -> List[Stage]:
        """The stages of ``module``."""
        entry = self._entries.get(id(module))
        if (entry is None or entry[0] is not module
                or not all(parent._modules.get(name) is child
                           for parent, name, child in entry[1])):
            stages = conv_stages(module)
            entry = (module, _links(module, stages), stages)
            self._entries[id(module)] = entry
        return entry[2]


def _links(module: nn.Module,
           stages: Sequence[Stage]) -> List[Tuple[nn.Module, str, nn.Module]]:
    """(parent, name, child) along the paths from ``module`` down to its
    stage modules."""
    wanted = {id(stage.module) for stage in stages}
    links = {}
    for path, sub in module.named_modules():
        if not path or id(sub) not in wanted:
            continue
        parent = module
        for name in path.split('.'):
            child = parent._modules[name]
            links[(id(parent), name)] = (parent, name, child)
            parent = child
    return list(links.values())
