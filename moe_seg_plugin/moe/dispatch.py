"""Sparse dispatch: the data-moving steps of a forward pass, in order.

``PatchConvMoE.forward`` takes them one after the other, after the gate and
top-k routing have chosen each patch's experts:

1. :func:`group_by_expert`: the (patch, choice) slots sorted by expert, as
   index tensors (:class:`ExpertGroups`);
2. :func:`gather_windows`: the slots' windows, in that order, with one
   index select from the input's pixel rows;
3. :func:`run_experts`: each expert once, on its contiguous run of windows;
4. :func:`mix_outputs`: each output pixel the weighted sum of that pixel of
   its patch's k outputs, written straight into its place in the map (one
   ``embedding_bag``: mixing and putting the patches back are one op);
5. :func:`put_back`: one output per patch put back into the map, unmixed
   (the naive reference's last step, :mod:`.reference`).

Where patches and windows lie is :mod:`.patches`' (the layout and its index
tables). Index tensors carry the routing on the device; the only value read
back to the host is how many windows each expert gets (to split the
windows), one small transfer per forward pass, and none in capacity mode,
where every expert gets the same number. Each step's number of operations
depends on neither the batch nor the number of patches (run_experts': one
expert call per expert). Steps 2 to 5 work on pixel rows (channels-last:
each pixel's channels side by side), so that a gather moves whole rows; the
experts run channels-last too (the faster convolution on a CPU, and the
layout tensor cores want).
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .distributed import global_counts, has_collective_norm, world_size
from .experts import StageStep, run_expert
from .patches import PatchLayout, all_patches
from .routing import count_values


@dataclass
class ExpertGroups:
    """The (patch, expert) slots of a batch, grouped by expert.

    Attributes:
        patches (Tensor): (S,) the patch whose window each expert run
            reads, expert after expert.
        counts (list[int]): How many of them each expert gets.
        slots (Tensor): (T, k) for patch t's r-th choice, its row among
            the experts' outputs (any row where the choice was dropped).
        weights (Tensor): (T, k) mixing weights, 0 where dropped.
        kept (Tensor, optional): (T, k) False where capacity dropped the
            choice; None when nothing can be dropped.
        capacity (int, optional): Windows per expert in capacity mode.
    """
    patches: Tensor
    counts: List[int]
    slots: Tensor
    weights: Tensor
    kept: Optional[Tensor] = None
    capacity: Optional[int] = None


def expert_capacity(factor: float, patches: int, top_k: int,
                    num_experts: int) -> int:
    """Windows per expert in capacity mode: ``ceil(factor * T * k / N)``,
    at least 1 and at most T (a patch chooses an expert once)."""
    return max(1, min(patches, math.ceil(factor * patches * top_k /
                                         num_experts)))


def group_by_expert(experts: Tensor, weights: Tensor, num_experts: int,
                    forced_expert: Optional[int] = None,
                    capacity: Optional[int] = None) -> ExpertGroups:
    """Group the slots of the chosen ``experts`` (T, k) by expert.

    Default mode: every slot, sorted by expert (stably: each expert's
    patches stay in order); how many each expert got is read to the host
    once. Capacity mode: each expert gets exactly ``capacity`` windows,
    shapes fixed by the input size, no host sync. Slots over an expert's
    capacity are dropped, first choices before second choices, then in
    patch order (GShard's policy): a dropped choice adds nothing and the
    patch's other weights stay as they were. Spare capacity runs on other
    patches' windows (real data, so batch norms see the input's
    statistics) and its outputs are not used.

    Args:
        experts (Tensor): The chosen experts of each patch.
        weights (Tensor): Their mixing weights (T, k).
        num_experts (int): N.
        forced_expert (int, optional): Every patch goes to this expert, so
            the counts are known without reading the choices (never
            dropped).
        capacity (int, optional): Windows per expert (capacity mode).

    Returns:
        ExpertGroups: The slots grouped by expert.
    """
    if capacity is not None and forced_expert is None:
        return _groups_with_capacity(experts, weights, num_experts, capacity)
    flat = experts.reshape(-1)
    order = torch.argsort(flat, stable=True)
    inverse = torch.empty_like(order).scatter_(
        0, order, torch.arange(flat.shape[0], device=flat.device))
    patches = torch.div(order, experts.shape[1], rounding_mode='floor')
    if forced_expert is not None:
        counts = [0] * num_experts
        counts[forced_expert] = flat.shape[0]
    else:
        counts = count_values(flat, num_experts).tolist()  # the host sync
    return ExpertGroups(patches, counts, inverse.view_as(experts), weights)


def _groups_with_capacity(experts: Tensor, weights: Tensor,
                          num_experts: int, capacity: int) -> ExpertGroups:
    patches, top_k = experts.shape
    # Each slot's place in its expert's queue, first choices first.
    by_rank = F.one_hot(experts.t().reshape(-1), num_experts)
    place = (by_rank.cumsum(0) * by_rank).sum(1).view(top_k, patches).t() - 1
    kept = place < capacity
    row = experts * capacity + place
    rows = num_experts * capacity
    device = experts.device
    # Rows of the experts' windows: spare ones read patches in turn; a
    # dropped slot writes to one row past the end, cut off.
    reads = torch.cat([
        torch.arange(rows, device=device) % patches,
        torch.zeros(1, dtype=torch.long, device=device)
    ]).scatter(0, torch.where(kept, row, rows).reshape(-1),
               torch.arange(patches, device=device).repeat_interleave(
                   top_k))[:rows]
    return ExpertGroups(reads, [capacity] * num_experts,
                        torch.where(kept, row, 0),
                        weights * kept.to(weights.dtype), kept, capacity)


def gather_windows(x: Tensor, layout: PatchLayout, patches: Tensor) -> Tensor:
    """The windows of ``patches``, gathered from a channels-last copy of
    ``x`` with one index select (its rows are pixels, so each gathered row
    is one pixel's channels in a row).

    Args:
        x (Tensor): The input map (B, C, H, W).
        layout (PatchLayout): Its patch layout.
        patches (Tensor): Patch indices (S,) in the layout's order; any
            order, repeats allowed (``ExpertGroups.patches``).

    Returns:
        Tensor: (S, C, Lh, Lw) in channels-last memory format, zeros where
        a window lies past the map.
    """
    r, c = layout.rows, layout.cols
    batch, channels, height, width = x.shape
    # One row per pixel, and a last row of zeros that every window position
    # past the map reads (a padded copy would write zeros over the whole
    # map first).
    pixels = x.new_empty((batch * height * width + 1, channels))
    pixels[:-1].view(batch, height, width, channels).copy_(
        x.permute(0, 2, 3, 1))
    pixels[-1:].zero_()
    image = torch.div(patches, layout.cells, rounding_mode='floor')
    cell = patches - image * layout.cells
    tables = layout.tables(x.device, x.dtype)
    inside = tables.cell_windows.index_select(0, cell)
    index = torch.where(inside >= 0,
                        inside + (image * (height * width))[:, None],
                        batch * height * width)
    windows = pixels.index_select(0, index.reshape(-1))
    return windows.view(-1, r.window, c.window, channels).permute(0, 3, 1, 2)


def _has_batch_norm(module: nn.Module) -> bool:
    return any(
        isinstance(m, nn.modules.batchnorm._BatchNorm)
        for m in module.modules())


def run_experts(experts: Sequence[nn.Module], steps: Sequence[StageStep],
                x: Tensor, layout: PatchLayout, groups: ExpertGroups,
                windows: Tensor) -> Tensor:
    """Each expert once, on its run of windows, in expert order.

    In distributed training with collective norms (SyncBN) in the experts,
    every expert some rank chose runs on every rank, on no window where
    this rank has none (see :mod:`.distributed`); in capacity mode every
    expert runs on every rank anyway. An expert with a batch
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

    Returns:
        Tensor: (S, C_out, ph, pw), the slots' outputs in expert order.
    """
    counts = groups.counts
    chosen = counts
    training = experts[0].training if len(experts) else False
    if (groups.capacity is None and training and world_size() > 1
            and has_collective_norm(experts)):
        chosen = global_counts(counts, x.device)
    pixels = layout.rows.patch * layout.cols.patch
    # split, not slices: its backward puts the windows' gradients side by
    # side in one copy, where each slice's would fill a zero tensor of all
    # windows.
    outputs = []
    for expert, count, anywhere, mine, patches in zip(
            experts, counts, chosen, windows.split(counts),
            groups.patches.split(counts)):
        if not anywhere:
            continue
        if training and count * pixels == 1 and _has_batch_norm(expert):
            outputs.append(
                _run_with_context(expert, steps, x, layout, patches))
        else:
            outputs.append(run_expert(expert, steps, mine, layout, patches))
    return torch.cat(outputs)


def _run_with_context(expert: nn.Module, steps: Sequence[StageStep],
                      x: Tensor, layout: PatchLayout,
                      patches: Tensor) -> Tensor:
    """``expert`` on every window of the batch; the outputs of
    ``patches``."""
    every = all_patches(layout, x.shape[0], x.device)
    out = run_expert(expert, steps, gather_windows(x, layout, every), layout,
                     every)
    return out.index_select(0, patches)


def mix_outputs(outputs: Tensor, layout: PatchLayout, slots: Tensor,
                weights: Optional[Tensor], batch: int,
                channels_last: bool = False) -> Tensor:
    """Mix patch outputs into the output map: each output pixel is the
    weighted sum of the same pixel of its patch's k outputs, one
    ``embedding_bag`` over the outputs' pixels that also puts each pixel in
    its place. ONNX has no such op (the exporter writes a loop over the
    bags, 250x slower than the stock model in onnxruntime), so an export
    gathers and sums instead.

    Args:
        outputs (Tensor): (S, C, ph, pw) patch outputs, any order.
        layout (PatchLayout): The patch layout.
        slots (Tensor): (B * gh * gw, k) for each patch (layout order), the
            rows of ``outputs`` to mix (``ExpertGroups.slots``).
        weights (Tensor, optional): (B * gh * gw, k) their mixing weights;
            None sums them.
        batch (int): B.
        channels_last (bool): Return the map in channels-last memory format
            (free) instead of contiguous (one transposing copy).

    Returns:
        Tensor: (B, C, Ho, Wo); patches' padded parts are dropped.
    """
    r, c = layout.rows, layout.cols
    tables = layout.tables(outputs.device, outputs.dtype)
    cells, k = tables.pixel_cells, slots.shape[1]
    # Mixed pixels in (image, pixel) order for a channels-last map, else in
    # (pixel, image) order: then (pixels, B * C) -> (B * C, pixels) is one
    # 2-D transpose, which torch copies blockwise (3x faster on a CPU than
    # a 4-D permute).
    order = (0, 1, 2) if channels_last else (1, 0, 2)
    source = (slots.view(batch, layout.cells, k).index_select(1, cells) *
              (r.patch * c.patch) + tables.pixel_offsets[:, None]).permute(
                  order).reshape(-1, k)
    if weights is not None:
        weights = weights.view(batch, layout.cells, k).index_select(
            1, cells).permute(order).reshape(-1, k).to(outputs.dtype)
    pixels = outputs.permute(0, 2, 3, 1).reshape(-1, outputs.shape[1])
    if not torch.onnx.is_in_onnx_export():
        mixed = F.embedding_bag(source, pixels, mode='sum',
                                per_sample_weights=weights)
    else:
        mixed = pixels.index_select(0, source.reshape(-1)).view(
            *source.shape, pixels.shape[1])
        if weights is not None:
            mixed = mixed * weights.unsqueeze(-1)
        mixed = mixed.sum(dim=1)
    if channels_last:
        return mixed.view(batch, r.out_size, c.out_size, -1).permute(
            0, 3, 1, 2)
    planes = mixed.view(r.out_size * c.out_size, -1).t().contiguous()
    return planes.view(batch, -1, r.out_size, c.out_size)


def put_back(patches: Tensor, layout: PatchLayout, batch: int) -> Tensor:
    """Put one output per patch back into the map, unmixed (the naive
    reference's de-patchify; the sparse forward puts its pixels back as it
    mixes them, :func:`mix_outputs`).

    Args:
        patches (Tensor): (B * gh * gw, C, ph, pw) in the layout's order.
        layout (PatchLayout): The patch layout.
        batch (int): B.

    Returns:
        Tensor: (B, C, Ho, Wo); padded parts are dropped.
    """
    order = torch.arange(patches.shape[0], device=patches.device)
    return mix_outputs(patches, layout, order[:, None], None, batch)


__all__ = [
    'ExpertGroups', 'expert_capacity', 'group_by_expert', 'gather_windows',
    'run_experts', 'mix_outputs', 'put_back'
]
