"""Sparse dispatch: patches grouped by expert, each expert once on its
patches' windows, the outputs mixed back per patch.

The steps, in the order a forward pass takes them (see
``PatchConvMoE.forward``): :func:`group_by_expert` sorts the (patch, expert)
slots by expert; ``patches.patchify`` gathers their windows in that order;
:func:`run_experts` runs each expert once, on its contiguous run of windows;
``patches.combine`` mixes each output pixel from its patch's k outputs with
their mixing weights. Index tensors carry the routing on the device;
the only value read back to the host is how many windows each expert gets
(to split the windows), one small transfer per forward pass.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn

from .distributed import global_counts, has_collective_norm, world_size
from .experts import StageStep, run_expert
from .patches import PatchLayout, all_patches, patchify, stage_masks
from .routing import count_values


@dataclass
class ExpertGroups:
    """The (patch, expert) slots of a batch, sorted by expert.

    Slot ``t * k + r`` is patch t's r-th choice.

    Attributes:
        patches (Tensor): (S,) the patch of each slot, in expert order.
        inverse (Tensor): (S,) where slot ``t * k + r`` lies in that order.
        counts (list[int]): Slots per expert (host values).
    """
    patches: Tensor
    inverse: Tensor
    counts: List[int]


def group_by_expert(experts: Tensor, num_experts: int,
                    forced_expert: Optional[int] = None) -> ExpertGroups:
    """Sort the slots of chosen ``experts`` (T, k) by expert, stably (each
    expert's patches stay in order).

    Args:
        experts (Tensor): The chosen experts of each patch.
        num_experts (int): N.
        forced_expert (int, optional): Every patch goes to this expert, so
            the counts are known without reading the choices.

    Returns:
        ExpertGroups: The slots in expert order.
    """
    flat = experts.reshape(-1)
    order = torch.argsort(flat, stable=True)
    slots = flat.shape[0]
    inverse = torch.empty_like(order).scatter_(
        0, order, torch.arange(slots, device=flat.device))
    patches = torch.div(order, experts.shape[1], rounding_mode='floor')
    if forced_expert is not None:
        counts = [0] * num_experts
        counts[forced_expert] = slots
    else:
        counts = count_values(flat, num_experts).tolist()  # the host sync
    return ExpertGroups(patches, inverse, counts)


def _has_batch_norm(module: nn.Module) -> bool:
    return any(
        isinstance(m, nn.modules.batchnorm._BatchNorm)
        for m in module.modules())


def run_experts(experts: Sequence[nn.Module], steps: Sequence[StageStep],
                x: Tensor, layout: PatchLayout, groups: ExpertGroups,
                windows: Tensor,
                masks: Sequence[Optional[Tensor]]) -> Tensor:
    """Each expert once, on its run of windows, in expert order.

    In distributed training with collective norms (SyncBN) in the experts,
    every expert some rank chose runs on every rank, on no window where
    this rank has none (see :mod:`.distributed`). An expert with a batch
    norm whose windows would hold one value per channel in training (one
    one-pixel patch) runs on every window of the batch and keeps its own
    output, so the norm has statistics to use.

    Args:
        experts (list[nn.Module]): The routed experts.
        steps (list[StageStep]): Their stages.
        x (Tensor): The input map (B, C, H, W).
        layout (PatchLayout): Its patch layout.
        groups (ExpertGroups): The slots in expert order.
        windows (Tensor): The slots' windows, in that order.
        masks (list[Tensor | None]): Per stage, the masks of the slots'
            window outputs (``patches.stage_masks``), in that order.

    Returns:
        Tensor: (S, C_out, ph, pw), the slots' outputs in expert order.
    """
    counts = groups.counts
    chosen = counts
    training = experts[0].training if len(experts) else False
    if training and world_size() > 1 and has_collective_norm(experts):
        chosen = global_counts(counts, x.device)
    pixels = layout.rows.patch * layout.cols.patch
    # split, not slices: its backward puts the windows' gradients side by
    # side in one copy, where each slice's would fill a zero tensor of all
    # windows.
    runs = zip(windows.split(counts), groups.patches.split(counts),
               *[[None] * len(counts) if m is None else m.split(counts)
                 for m in masks])
    outputs = []
    for expert, count, anywhere, (mine, patches, *mine_masks) in zip(
            experts, counts, chosen, runs):
        if not anywhere:
            continue
        if training and count * pixels == 1 and _has_batch_norm(expert):
            outputs.append(
                _run_with_context(expert, steps, x, layout, patches))
        else:
            outputs.append(run_expert(expert, steps, mine, mine_masks))
    return torch.cat(outputs)


def _run_with_context(expert: nn.Module, steps: Sequence[StageStep],
                      x: Tensor, layout: PatchLayout,
                      patches: Tensor) -> Tensor:
    """``expert`` on every window of the batch; the outputs of
    ``patches``."""
    every = all_patches(layout, x.shape[0], x.device)
    masks = stage_masks(layout, [step.masked for step in steps], every, x)
    out = run_expert(expert, steps, patchify(x, layout, every), masks)
    return out.index_select(0, patches)


__all__ = ['ExpertGroups', 'group_by_expert', 'run_experts']
