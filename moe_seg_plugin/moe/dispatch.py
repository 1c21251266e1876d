"""Sparse dispatch: the data-moving steps of a forward pass, in order.

``PatchConvMoE.forward`` takes them one after the other, after the gate and
top-k routing have chosen each patch's experts:

1. :func:`group_by_expert`: the (patch, choice) slots sorted by expert
   (:class:`ExpertGroups`);
2. cut out the slots' windows, expert after expert: :class:`CutWindows`
   (views) or :func:`gather_windows` (indexed);
3. :func:`run_experts`: each expert once, on its windows;
4. mix each output pixel from its patch's k outputs, weighted, into its
   place in the map: :class:`MixIntoMap` (views) or :func:`mix_outputs`
   (indexed);
5. :func:`put_back`: one output per patch put back into the map, unmixed
   (the naive reference's last step, :mod:`.reference`).

Inference through views (eval mode, no autograd) takes steps 2 to 4 patch
by patch instead (:func:`run_patch_by_patch`).

Two ways of moving the data share the gate, the routing, the grouping, the
experts' runs and the mixing weights:

- **views** (default mode on a CPU): the grouping is read to the host
  once, and windows and patches are cut out of and written into the maps
  in their own memory format (NCHW) through views, one copy per window
  and one multiply-add per slot. No layout conversion and no buffer
  larger than one expert's windows besides the output map: on a CPU the
  passes over whole maps and the fresh pages of large buffers cost more
  than the convolutions of a light layer. Per-window operations: their
  number grows with batch x patches.
- **indexed** (capacity mode, accelerators, tracing, compiling, export):
  every step is a few index operations on pixel rows (channels-last)
  whose number depends on neither the batch nor the number of patches;
  the only value read to the host is how many windows each expert gets,
  and none in capacity mode.

Where patches and windows lie is :mod:`.patches`' (the layout, its index
tables and cell boxes).
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .distributed import global_counts, has_collective_norm, world_size
from .experts import StageStep, run_expert
from .folding import fold_plan, run_folded
from .merging import (TailAffine, convolve_merged, merge_kernels,
                      patch_kernel)
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
        runs (list[list[int]], optional): Per expert, its patches (host
            ints; ``patches`` split by ``counts``), when grouped for the
            views dispatch.
        rows (list[list[int]], optional): Per patch, its k rows among the
            experts' outputs (host ints; ``slots``), likewise.
    """
    patches: Tensor
    counts: List[int]
    slots: Tensor
    weights: Tensor
    kept: Optional[Tensor] = None
    capacity: Optional[int] = None
    runs: Optional[List[List[int]]] = None
    rows: Optional[List[List[int]]] = None


def expert_capacity(factor: float, patches: int, top_k: int,
                    num_experts: int) -> int:
    """Windows per expert in capacity mode: ``ceil(factor * T * k / N)``,
    at least 1 and at most T (a patch chooses an expert once)."""
    return max(1, min(patches, math.ceil(factor * patches * top_k /
                                         num_experts)))


def group_by_expert(experts: Tensor, weights: Tensor, num_experts: int,
                    forced_expert: Optional[int] = None,
                    capacity: Optional[int] = None,
                    on_host: bool = False) -> ExpertGroups:
    """Group the slots of the chosen ``experts`` (T, k) by expert.

    Default mode: every slot, sorted by expert (stably: each expert's
    patches stay in order); how many each expert got is read to the host
    once (with ``on_host``, in the same transfer, each expert's patches and
    each patch's rows too). Capacity mode: each expert gets exactly
    ``capacity`` windows, shapes fixed by the input size, no host sync. Slots over an expert's
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
        on_host (bool): Also give ``runs`` and ``rows`` (default mode
            only).

    Returns:
        ExpertGroups: The slots grouped by expert.
    """
    if capacity is not None and forced_expert is None:
        return _groups_with_capacity(experts, weights, num_experts, capacity)
    flat = experts.reshape(-1)
    total = flat.shape[0]
    order = torch.argsort(flat, stable=True)
    inverse = torch.empty_like(order).scatter_(
        0, order, torch.arange(total, device=flat.device))
    patches = torch.div(order, experts.shape[1], rounding_mode='floor')
    slots = inverse.view_as(experts)
    if forced_expert is not None:
        # Every slot is the forced expert's, in patch order: nothing to
        # read.
        counts = [0] * num_experts
        counts[forced_expert] = total
        host = list(range(total)) * 2 if on_host else None
    elif on_host:
        host = torch.cat([count_values(flat, num_experts), patches,
                          inverse]).tolist()  # the host sync
        counts, host = host[:num_experts], host[num_experts:]
    else:
        counts = count_values(flat, num_experts).tolist()  # the host sync
        host = None
    runs: Optional[List[List[int]]] = None
    rows: Optional[List[List[int]]] = None
    if host is not None:
        runs, rows, start, width = [], [], 0, experts.shape[1]
        for count in counts:
            runs.append(host[start:start + count])
            start += count
        for first in range(total, 2 * total, width):
            rows.append(host[first:first + width])
    return ExpertGroups(patches, counts, slots, weights, runs=runs,
                        rows=rows)


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


class CutWindows(torch.autograd.Function):
    """Each expert's windows cut out of ``x`` through views (the views
    dispatch's step 2): one copy per window in ``x``'s own memory format,
    zeros where the window lies past the map.

    Backward adds each window's gradient into one gradient of ``x`` (under
    autograd, each cut view would make a zero map of ``x``'s size and add
    it: on LR-ASPP's 1x160x256x512 input that step is 2.9x slower).

    ``CutWindows.apply(x, layout, runs)``:

    Args:
        x (Tensor): The input map (B, C, H, W).
        layout (PatchLayout): Its patch layout.
        runs (list[list[int]]): Per expert, its patches
            (``ExpertGroups.runs``).

    Returns:
        tuple[Tensor, ...]: Per expert, its windows (P, C, Lh, Lw).
    """

    @staticmethod
    def forward(ctx, x: Tensor, layout: PatchLayout,
                runs: List[List[int]]) -> Tuple[Tensor, ...]:
        ctx.layout, ctx.runs, ctx.shape = layout, runs, x.shape
        size = (x.shape[1], layout.rows.window, layout.cols.window)
        memory_format = (torch.channels_last if not x.is_contiguous() and
                         x.is_contiguous(memory_format=torch.channels_last)
                         else torch.contiguous_format)
        found = []
        for patches in runs:
            windows = torch.empty((len(patches), ) + size, dtype=x.dtype,
                                  device=x.device,
                                  memory_format=memory_format)
            for index, patch in enumerate(patches):
                image, cell = divmod(patch, layout.cells)
                box = layout.boxes[cell]
                top, bottom, down = box.window_rows
                left, right, across = box.window_cols
                window = windows[index]
                window[:, down:down + bottom - top,
                       across:across + right - left].copy_(
                           x[image, :, top:bottom, left:right])
                # Zeros past the map: most windows have one or two sides.
                if down:
                    window[:, :down].zero_()
                if down + bottom - top < size[1]:
                    window[:, down + bottom - top:].zero_()
                if across:
                    window[:, :, :across].zero_()
                if across + right - left < size[2]:
                    window[:, :, across + right - left:].zero_()
            found.append(windows)
        return tuple(found)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads: Optional[Tensor]):
        layout = ctx.layout
        grad_x = None
        for patches, grad in zip(ctx.runs, grads):
            if grad is None or not patches:
                continue
            if grad_x is None:
                grad_x = grad.new_zeros(ctx.shape)
            for index, patch in enumerate(patches):
                image, cell = divmod(patch, layout.cells)
                box = layout.boxes[cell]
                top, bottom, down = box.window_rows
                left, right, across = box.window_cols
                grad_x[image, :, top:bottom, left:right] += grad[
                    index, :, down:down + bottom - top,
                    across:across + right - left]
        return grad_x, None, None


def _has_batch_norm(module: nn.Module) -> bool:
    return any(
        isinstance(m, nn.modules.batchnorm._BatchNorm)
        for m in module.modules())


def run_experts(experts: Sequence[nn.Module], steps: Sequence[StageStep],
                x: Tensor, layout: PatchLayout, groups: ExpertGroups,
                windows: Sequence[Tensor], relu: bool = True) -> List[Tensor]:
    """Each expert once, on its windows, in expert order.

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
        windows (list[Tensor]): Per expert, its windows (P, C, Lh, Lw).
        relu (bool): False: the experts leave out a final ReLU, which the
            mix applies (:class:`MixIntoMap`).

    Returns:
        list[Tensor]: The outputs (P, C_out, ph, pw) of the experts that
        ran, in expert order: the slots' outputs, row after row.
    """
    counts = groups.counts
    chosen = counts
    training = experts[0].training if len(experts) else False
    if (groups.capacity is None and training and world_size() > 1
            and has_collective_norm(experts)):
        chosen = global_counts(counts, x.device)
    pixels = layout.rows.patch * layout.cols.patch
    outputs = []
    for expert, count, anywhere, mine, patches in zip(
            experts, counts, chosen, windows, groups.patches.split(counts)):
        if not anywhere:
            continue
        if training and count * pixels == 1 and _has_batch_norm(expert):
            outputs.append(
                _run_with_context(expert, steps, x, layout, patches, relu))
        else:
            outputs.append(
                run_expert(expert, steps, mine, layout, patches, relu))
    return outputs


def _run_with_context(expert: nn.Module, steps: Sequence[StageStep],
                      x: Tensor, layout: PatchLayout, patches: Tensor,
                      relu: bool = True) -> Tensor:
    """``expert`` on every window of the batch; the outputs of
    ``patches``."""
    every = all_patches(layout, x.shape[0], x.device)
    out = run_expert(expert, steps, gather_windows(x, layout, every), layout,
                     every, relu)
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


class MixIntoMap(torch.autograd.Function):
    """Mix the experts' outputs straight into the output map through views
    (the views dispatch's step 4): each patch's region is its first
    choice's output times its weight, plus each further choice's times its
    weight (one multiply-add per slot); patches' padded parts are dropped.

    Backward writes each slot's gradient (the region's times its weight)
    straight into one gradient per expert output, and gives each weight the
    region's gradient dotted with its output. Under plain autograd the
    regions are separate tensors joined by concatenation, whose copies and
    their backward's cost a training step of ERFNet's MoE model (1x3x512x
    1024, one thread) 129 ms more in ``cat`` alone, about a fifth of its
    MoE layer's forward and backward.

    With ``relu`` the outputs are the experts' values before their final
    ReLU (``StageStep.ends_in_relu``), which the mix applies. Then nothing
    but this step keeps them for backward, and backward writes each slot's
    gradient (masked where the ReLU was zero) over its output in place: the
    experts' gradients take no new memory and no ReLU backward runs. On
    this CPU fresh pages of large buffers cost more than the arithmetic
    written into them; in two runs of the floor benchmark each it took the
    excess of ERFNet's training step over its floor from 0.067 and 0.051 to
    0.020 and 0.002. A second backward through the same forward pass
    (``retain_graph=True``) then finds the outputs spent and raises.

    ``MixIntoMap.apply(layout, rows, weights, channels_last, relu,
    *outputs)``:

    Args:
        layout (PatchLayout): The patch layout.
        rows (list[list[int]]): Per patch (layout order), its k rows among
            the outputs (``ExpertGroups.rows``: every row is one slot's).
        weights (Tensor): (T, k) the mixing weights.
        channels_last (bool): Return the map channels-last (else
            contiguous).
        relu (bool): Apply a ReLU to each output before mixing it.
        *outputs (Tensor): The experts' outputs (P, C, ph, pw), whose rows,
            one after the other, the slots point into (:func:`run_experts`).

    Returns:
        Tensor: (B, C, Ho, Wo).
    """

    @staticmethod
    def forward(ctx, layout: PatchLayout, rows: List[List[int]],
                weights: Tensor, channels_last: bool, relu: bool,
                *outputs: Tensor) -> Tensor:
        ctx.layout, ctx.rows, ctx.relu = layout, rows, relu
        ctx.spent = False
        ctx.save_for_backward(weights, *outputs)
        sources: List[Tensor] = []
        for output in outputs:
            sources += output.unbind(0)
        first = outputs[0]
        out = torch.empty(
            (len(rows) // layout.cells, first.shape[1]) + layout.out_size,
            dtype=first.dtype, device=first.device,
            memory_format=(torch.channels_last if channels_last else
                           torch.contiguous_format))
        each = weights.to(first.dtype).unbind(0)
        for patch, slots in enumerate(rows):
            image, cell = divmod(patch, layout.cells)
            (top, height), (left, width) = (layout.boxes[cell].patch_rows,
                                            layout.boxes[cell].patch_cols)
            region = out[image, :, top:top + height, left:left + width]
            for rank, row in enumerate(slots):
                source = sources[row][:, :height, :width]
                if rank:
                    region.addcmul_(source.clamp_min(0) if relu else source,
                                    each[patch][rank])
                elif relu:
                    torch.clamp_min(source, 0, out=region).mul_(
                        each[patch][rank])
                else:
                    torch.mul(source, each[patch][rank], out=region)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        layout, rows, relu = ctx.layout, ctx.rows, ctx.relu
        if relu and ctx.spent:
            raise RuntimeError(
                'PatchConvMoE: a second backward through the same forward '
                'pass (retain_graph=True); the views dispatch writes its '
                "experts' gradients over their outputs in the first. Sum "
                "the losses into one backward, or set dispatch='indexed' "
                'on the layer for such a model')
        ctx.spent = True
        weights, *outputs = ctx.saved_tensors
        grads: List[Optional[Tensor]] = []
        sources: List[Tensor] = []
        targets: List[Optional[Tensor]] = []
        for output, need in zip(outputs, ctx.needs_input_grad[5:]):
            # Experts run on no window (collective norms) get an empty
            # gradient, so their norms' backward runs on every rank.
            target = (output if relu else torch.empty_like(output)
                      ) if need else None
            grads.append(target)
            sources += output.unbind(0)
            targets += (target.unbind(0) if need else
                        [None] * output.shape[0])
        each = weights.to(grad.dtype).unbind(0)
        dots = []
        for patch, slots in enumerate(rows):
            image, cell = divmod(patch, layout.cells)
            (top, height), (left, width) = (layout.boxes[cell].patch_rows,
                                            layout.boxes[cell].patch_cols)
            region = grad[image, :, top:top + height, left:left + width]
            for rank, row in enumerate(slots):
                source, target = sources[row], targets[row]
                part = source[:, :height, :width]
                if relu:
                    # The region's gradient where the ReLU let it through;
                    # dotted with the values before the ReLU, it is the
                    # weight's gradient <region, relu(part)>.
                    passed = region * (part > 0)
                    if ctx.needs_input_grad[2]:
                        dots.append(
                            torch.dot(passed.reshape(-1), part.reshape(-1)))
                elif ctx.needs_input_grad[2]:
                    dots.append((region * part).sum())
                if target is None:
                    continue
                # With relu, over the output (used above for the last time).
                torch.mul(passed if relu else region, each[patch][rank],
                          out=target[:, :height, :width])
                # The padded part of a smaller patch was not used.
                if height < target.shape[1]:
                    target[:, height:].zero_()
                if width < target.shape[2]:
                    target[:, :height, width:].zero_()
        grad_weights = (torch.stack(dots).view_as(weights).to(weights.dtype)
                        if dots else None)
        return (None, None, grad_weights, None, None, *grads)


def run_patch_by_patch(experts: Sequence[nn.Module],
                       steps: Sequence[StageStep], x: Tensor,
                       layout: PatchLayout, groups: ExpertGroups,
                       channels_last: bool = False,
                       merged: bool = False,
                       tail: Optional[TailAffine] = None) -> Tensor:
    """Inference through views, patch after patch (eval mode, no autograd):
    each patch's window is cut out once, its k experts run on it and their
    outputs, weighted, go straight into its place in the output map; with
    ``merged`` (convolution experts, :mod:`.merging`) its one merged kernel
    runs on it instead.

    In eval an expert's batch norms use running statistics, so an expert
    run window by window gives what it gives on all its windows at once;
    the buffers then hold one window, which a CPU's allocator reuses from
    call to call, where an expert's whole run (its windows, outputs and
    norm outputs) gets fresh pages each time. With 8 experts, top-2 on a
    3x3 grid and one thread, this takes LR-ASPP's layer from 2.48x to 1.85x
    its dense layer, ERFNet's from 1.75x to 1.17x and U-Net's from 2.09x to
    1.41x (the others within 0.1x). Where the experts' last convolution
    can take their batch norm and the slot's weight (:mod:`.folding`), it
    does, and its output (after a ReLU) goes into the map with one pass.

    Args:
        experts (list[nn.Module]): The routed experts (eval mode).
        steps (list[StageStep]): Their stages.
        x (Tensor): The input map (B, C, H, W).
        layout (PatchLayout): Its patch layout.
        groups (ExpertGroups): The slots, grouped on the host.
        channels_last (bool): Return the map channels-last.
        merged (bool): Merge each patch's kernels (the experts are
            ``nn.Conv2d``); the patch's output then takes one copy.
        tail (TailAffine, optional): With ``merged``, the layer's tail,
            folded into each merged kernel (its ReLU applied on writing):
            the output is then the tail's.

    Returns:
        Tensor: (B, C_out, Ho, Wo).
    """
    owner: List[int] = []  # the expert of each row
    for expert, count in enumerate(groups.counts):
        owner += [expert] * count
    plan = None if merged else fold_plan(experts[0], steps, layout)
    each = groups.weights.unbind(0)
    out = None
    for patch, slots in enumerate(groups.rows):
        image, cell = divmod(patch, layout.cells)
        (window, ) = CutWindows.apply(x, layout, [[patch]])
        index = torch.tensor([patch], device=x.device)
        box = layout.boxes[cell]
        (first, height), (start, width) = box.patch_rows, box.patch_cols
        if merged:  # the patch's experts as one convolution, weighted
            conv = experts[0]
            kernel, bias = patch_kernel(
                [experts[owner[row]] for row in slots], each[patch].unbind(0))
            if tail is not None:
                kernel, bias = tail.fold(kernel, bias)
            outputs = [F.conv2d(window, kernel, bias, conv.stride, 0,
                                conv.dilation, conv.groups)]
        elif plan is None:
            outputs = [
                run_expert(experts[owner[row]], steps, window, layout, index)
                for row in slots
            ]
        else:  # weight x each output, before a final ReLU
            outputs = [
                run_folded(experts[owner[row]], steps, plan, window, layout,
                           index, each[patch][rank])
                for rank, row in enumerate(slots)
            ]
        # Merged and folded outputs come weighted (a folded one before its
        # ReLU); the others are weighted as they are written.
        weighted = merged or plan is not None
        relu = bool(plan.relu if plan else tail and tail.relu)
        for rank, output in enumerate(outputs):
            if out is None:
                out = torch.empty(
                    (len(groups.rows) // layout.cells, output.shape[1]) +
                    layout.out_size, dtype=output.dtype, device=x.device,
                    memory_format=(torch.channels_last if channels_last
                                   else torch.contiguous_format))
            region = out[image, :, first:first + height, start:start + width]
            source = output[0, :, :height, :width]
            if not weighted and rank:
                region.addcmul_(source, each[patch][rank])
            elif not weighted:
                torch.mul(source, each[patch][rank], out=region)
            elif rank:
                region.add_(source.clamp_min_(0) if relu else source)
            elif relu:
                torch.clamp_min(source, 0, out=region)
            else:
                region.copy_(source)
    return out


def run_merged(experts: Sequence[nn.Conv2d], x: Tensor, layout: PatchLayout,
               chosen: Tensor, weights: Tensor, views: bool,
               channels_last: bool = False) -> Tensor:
    """Convolution-scoped experts with merged kernels (``expert_scope=
    'conv'`` in eval, :mod:`.merging`): each patch's window convolved once
    with its k experts' kernels mixed by their weights, then put in place.

    Args:
        experts (list[nn.Conv2d]): The routed expert convolutions.
        x (Tensor): The input map (B, C, H, W).
        layout (PatchLayout): Its patch layout.
        chosen (Tensor): (T, k) each patch's experts.
        weights (Tensor): (T, k) their weights (0 where dropped).
        views (bool): Cut and place through views (else index operations).
        channels_last (bool): Return the map channels-last.

    Returns:
        Tensor: (B, C_out, Ho, Wo).
    """
    count = chosen.shape[0]
    kernels, biases = merge_kernels(experts, chosen, weights.to(x.dtype))
    if views:
        (windows, ) = CutWindows.apply(x, layout, [list(range(count))])
    else:
        windows = gather_windows(
            x, layout, torch.arange(count, device=x.device))
    outputs = convolve_merged(experts[0], windows, kernels, biases)
    if views:
        return MixIntoMap.apply(layout, [[row] for row in range(count)],
                                outputs.new_ones((count, 1)), channels_last,
                                False, outputs)
    order = torch.arange(count, device=x.device)
    return mix_outputs(outputs, layout, order[:, None], None,
                       count // layout.cells, channels_last)


def run_merged_sliced(experts: Sequence[nn.Conv2d], x: Tensor,
                      layout: PatchLayout, chosen: Tensor,
                      weights: Tensor) -> Tensor:
    """Merged kernels for a traced graph (ONNX export): each patch's window
    cut with fixed slices and zero padding, convolved with the patch's
    merged kernel, and the patches joined back by concatenation (they tile
    the output).

    The layout is fixed by the input size, so every slice and pad is a
    constant of the graph: no index tables, no scatter, no layout
    transposes (the indexed path's gather and sum cost onnxruntime more
    than the convolutions on LR-ASPP's layer: 1.43x the stock model).

    Args:
        experts (list[nn.Conv2d]): The routed expert convolutions.
        x (Tensor): The input map (B, C, H, W).
        layout (PatchLayout): Its patch layout.
        chosen (Tensor): (T, k) each patch's experts, T = B * cells.
        weights (Tensor): (T, k) their weights.

    Returns:
        Tensor: (B, C_out, Ho, Wo).
    """
    conv = experts[0]
    kernels, biases = merge_kernels(experts, chosen, weights.to(x.dtype))
    height, width = layout.rows.window, layout.cols.window
    grid_rows, grid_cols = layout.grid
    images = []
    for image in range(x.shape[0]):
        rows = []
        for row in range(grid_rows):
            patches = []
            for col in range(grid_cols):
                cell = row * grid_cols + col
                patch = image * layout.cells + cell
                box = layout.boxes[cell]
                top, bottom, down = box.window_rows
                left, right, across = box.window_cols
                window = F.pad(x[image:image + 1, :, top:bottom, left:right],
                               (across, width - across - (right - left),
                                down, height - down - (bottom - top)))
                out = F.conv2d(window, kernels[patch],
                               None if biases is None else biases[patch],
                               conv.stride, 0, conv.dilation, conv.groups)
                patches.append(out[:, :, :box.patch_rows[1],
                                   :box.patch_cols[1]])
            rows.append(torch.cat(patches, dim=3))
        images.append(torch.cat(rows, dim=2))
    return torch.cat(images)


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
    'ExpertGroups', 'expert_capacity', 'group_by_expert', 'CutWindows',
    'gather_windows', 'run_experts', 'MixIntoMap', 'mix_outputs',
    'run_merged', 'run_merged_sliced', 'run_patch_by_patch', 'put_back'
]
