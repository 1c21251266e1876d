"""Cutting a feature map into patches with halo, and putting them back.

The grid is laid over the replaced layer's *output*: along each axis the
output is split into patches whose sizes differ by at most one pixel (grid
mode) or are a fixed size with a shorter last patch (patch-size mode); every
patch holds at least one real pixel. Patches are padded to one common size so
that they stack into a batch, and each patch's window is cut from the input
with the halo its expert's receptive field needs, so at a patch border the
expert sees exactly what the dense layer sees.

The layer's fast path never makes all windows: :func:`gather_windows` copies
each expert's windows straight from the map, and :func:`mix_patches` writes
the weighted expert outputs straight into the output map (both autograd
Functions with backward passes that touch each pixel once per use).
:meth:`PatchLayout.extract` / :meth:`PatchLayout.assemble` are the plain
version (the naive reference uses them).
"""
import math
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .geometry import ChainAxis


@dataclass
class AxisLayout:
    """Patches of one axis.

    Attributes:
        in_size (int): Input length in pixels.
        out_size (int): Output length of the replaced layer.
        starts (list[int]): First output pixel of each patch.
        sizes (list[int]): Real output pixels of each patch.
        patch (int): Common (padded) output length of a patch.
        crop (int): Leading expert outputs to drop (they read the window's
            own zero padding, not the real neighbours).
        window (int): Input window length (patch plus halo).
        pad_before (int): Zeros added before the input.
        pad_after (int): Zeros added after the input.
        window_starts (list[int]): Start of each window in input pixels
            (negative inside the leading padding).
        core_bounds (list[int]): Input pixels each patch owns for gating:
            patch i owns ``core_bounds[i]`` to ``core_bounds[i + 1]``.
        stage_sizes (list[int]): Dense output length after each stage.
        stage_strides (list[int]): Cumulative stride after each stage.
        tight_offset (int): Start of a patch's *tight* window in its
            window: the input its outputs read when the layer's padding is
            left out (valid convolution), so no halo output is computed.
        tight_window (int): Length of a tight window.
    """
    in_size: int
    out_size: int
    starts: List[int]
    sizes: List[int]
    patch: int
    crop: int
    window: int
    pad_before: int
    pad_after: int
    window_starts: List[int]
    core_bounds: List[int]
    stage_sizes: List[int]
    stage_strides: List[int]
    tight_offset: int = 0
    tight_window: int = 0

    @property
    def count(self) -> int:
        return len(self.starts)

    def window_span(self, index: int,
                    tight: bool = False) -> Tuple[int, int, int]:
        """The part of patch ``index``'s window (or tight window) that lies
        in the input.

        Returns:
            tuple: First and past-the-end input pixel, and where the first
            one lies in the window (the pixels before it are padding).
        """
        start = self.window_starts[index]
        length = self.window
        if tight:
            start, length = start + self.tight_offset, self.tight_window
        low = min(max(start, 0), self.in_size)
        high = max(min(start + length, self.in_size), low)
        # A window wholly past the input's end (over-padded layers) is all
        # padding: an empty span at its start, the rest zeroed.
        return low, high, min(max(low - start, 0), length)

    def core_sizes(self) -> List[int]:
        """Input pixels each patch owns for gating."""
        bounds = self.core_bounds
        return [max(b - a, 0) for a, b in zip(bounds, bounds[1:])]

    def padded_window_starts(self) -> List[int]:
        """Start of each window in the zero-padded input."""
        return [start + self.pad_before for start in self.window_starts]

    def core_mask(self) -> List[List[float]]:
        """1 where a window position is a real pixel its patch owns."""
        rows = []
        for i, start in enumerate(self.window_starts):
            low, high = self.core_bounds[i], self.core_bounds[i + 1]
            rows.append([
                1.0 if low <= start + t < high else 0.0
                for t in range(self.window)
            ])
        return rows

    def stage_mask(self, stage: int, length: int) -> List[List[float]]:
        """1 where a stage's output on a window lies inside its dense map.

        Args:
            stage (int): Index of the stage.
            length (int): The stage's output length on a window.
        """
        stride = self.stage_strides[stage]
        size = self.stage_sizes[stage]
        return [[
            1.0 if 0 <= start // stride + t < size else 0.0
            for t in range(length)
        ] for start in self.window_starts]



def split_axis(out_size: int, grid: Optional[int],
               patch_size: Optional[int], axis: str) -> Tuple[List[int],
                                                              List[int], int]:
    """Split ``out_size`` output pixels into patches.

    Args:
        out_size (int): Output length.
        grid (int, optional): Number of patches (grid mode).
        patch_size (int, optional): Patch length (patch-size mode).
        axis (str): 'height' or 'width', for error messages.

    A grid with more patches than the output has pixels along the axis is
    clipped to one patch per pixel (:meth:`PatchLayout.clipped` says so).

    Returns:
        tuple: Patch starts, real sizes, and the common padded length.
    """
    if out_size < 1:
        raise ValueError(f'the replaced layer gives an empty output along '
                         f'the {axis} for this input')
    if grid is not None:
        grid = min(grid, out_size)
        base, extra = divmod(out_size, grid)
        sizes = [base + 1] * extra + [base] * (grid - extra)
    else:
        count = math.ceil(out_size / patch_size)
        sizes = [min(patch_size, out_size - i * patch_size)
                 for i in range(count)]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return starts, sizes, max(sizes)


def axis_layout(chain: ChainAxis, in_size: int, grid: Optional[int],
                patch_size: Optional[int], axis: str) -> AxisLayout:
    """Lay patches over one axis of the replaced layer.

    Args:
        chain (ChainAxis): The layer's geometry along this axis.
        in_size (int): Input length.
        grid (int, optional): Number of patches.
        patch_size (int, optional): Patch length in output pixels.
        axis (str): 'height' or 'width'.

    Returns:
        AxisLayout: Where each patch and its window lie.
    """
    stage_sizes = chain.sizes(in_size)
    out_size = stage_sizes[-1]
    starts, sizes, patch = split_axis(out_size, grid, patch_size, axis)
    stride, pad, extent = chain.stride, chain.pad_before, chain.extent
    crop = -(-pad // stride)
    window = (crop + patch - 1) * stride - pad + extent
    window_starts = [(start - crop) * stride for start in starts]
    pad_before = crop * stride
    pad_after = max(0, window_starts[-1] + window - in_size)
    centre = (extent - 1) // 2 - pad
    bounds = [0] + [
        min(max(start * stride + centre, 0), in_size)
        for start in starts[1:]
    ] + [in_size]
    return AxisLayout(in_size, out_size, starts, sizes, patch, crop, window,
                      pad_before, pad_after, window_starts, bounds,
                      stage_sizes, chain.cumulative_strides(),
                      tight_offset=crop * stride - pad,
                      tight_window=(patch - 1) * stride + extent)


class PatchLayout:
    """Patches of a whole feature map, with index tensors cached per device.

    Patches are ordered image by image, then row by row of the grid: patch
    ``t`` is image ``t // (gh * gw)``, grid cell ``t % (gh * gw)``.

    Args:
        rows (AxisLayout): Layout along the height.
        cols (AxisLayout): Layout along the width.
    """

    def __init__(self, rows: AxisLayout, cols: AxisLayout) -> None:
        self.rows = rows
        self.cols = cols
        self._cache: Dict[tuple, Tensor] = {}
        self._window_boxes = {
            tight: [(rows.window_span(i, tight), cols.window_span(j, tight))
                    for i in range(rows.count) for j in range(cols.count)]
            for tight in (False, True)
        }
        self._output_boxes = [
            (rows.starts[i], rows.sizes[i], cols.starts[j], cols.sizes[j])
            for i in range(rows.count) for j in range(cols.count)
        ]

    @property
    def grid(self) -> Tuple[int, int]:
        return self.rows.count, self.cols.count

    def clipped(self, grid: Optional[Tuple[int, int]]) -> bool:
        """Whether this layout has fewer patches than ``grid`` asks for
        (the output is smaller than the grid along an axis)."""
        return grid is not None and self.grid != tuple(grid)

    @property
    def cells(self) -> int:
        return self.rows.count * self.cols.count

    @property
    def out_size(self) -> Tuple[int, int]:
        return self.rows.out_size, self.cols.out_size

    def window_box(self, patch: int,
                   tight: bool = False) -> Tuple[int, tuple, tuple]:
        """Image of ``patch`` and its window's (or tight window's) in-input
        rows and columns (first, past-the-end, offset in the window; see
        :meth:`AxisLayout.window_span`)."""
        image, cell = divmod(patch, self.cells)
        rows, cols = self._window_boxes[tight][cell]
        return image, rows, cols

    def window_size(self, tight: bool = False) -> Tuple[int, int]:
        """Rows and columns of a window (or tight window)."""
        if tight:
            return self.rows.tight_window, self.cols.tight_window
        return self.rows.window, self.cols.window

    def output_box(self, patch: int) -> Tuple[int, int, int, int, int]:
        """Image of ``patch`` and its output pixels: top, height, left,
        width."""
        image, cell = divmod(patch, self.cells)
        return (image, ) + self._output_boxes[cell]

    def _cached(self, key: tuple, make) -> Tensor:
        tensor = self._cache.get(key)
        if tensor is None:
            tensor = make()
            self._cache[key] = tensor
        return tensor

    def _mask(self, key: tuple, row_values, col_values, device: torch.device,
              dtype: torch.dtype) -> Tensor:

        def make() -> Tensor:
            rows = torch.tensor(row_values, dtype=dtype, device=device)
            cols = torch.tensor(col_values, dtype=dtype, device=device)
            mask = rows[:, None, :, None] * cols[None, :, None, :]
            return mask.reshape(self.cells, 1, rows.shape[1], cols.shape[1])

        return self._cached(key + (device, dtype), make)

    def extract(self, x: Tensor) -> Tensor:
        """Cut ``x`` (B, C, H, W) into windows (B * gh * gw, C, Lh, Lw)."""
        r, c = self.rows, self.cols
        padded = F.pad(x, (c.pad_before, c.pad_after, r.pad_before,
                           r.pad_after))
        pieces = [
            padded[:, :, top:top + r.window, left:left + c.window]
            for top in r.padded_window_starts()
            for left in c.padded_window_starts()
        ]
        return torch.stack(pieces, dim=1).flatten(0, 1)

    def core_mask(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        """(gh * gw, 1, Lh, Lw): 1 on the real pixels each patch owns."""
        return self._mask(('core', ), self.rows.core_mask(),
                          self.cols.core_mask(), device, dtype)

    def stage_mask(self, stage: int, size: Tuple[int, int],
                   device: torch.device, dtype: torch.dtype) -> Tensor:
        """(gh * gw, 1, h, w): 1 where a stage's window output is inside
        its dense output (elsewhere the dense layer's next stage would read
        zero padding)."""
        return self._mask(('stage', stage, size),
                          self.rows.stage_mask(stage, size[0]),
                          self.cols.stage_mask(stage, size[1]), device, dtype)

    def cell_means(self, x: Tensor) -> Tensor:
        """Mean of ``x`` (B, C, H, W) over the input pixels each patch owns.

        The same figure as :func:`~.gates.masked_mean` of the patch windows
        under :meth:`core_mask`, computed on the map itself (no windows).

        Returns:
            Tensor: Shape (B * gh * gw, C), patches in the layout's order.
        """
        r, c = self.rows, self.cols
        rows = torch.stack([
            x[:, :, low:high].sum(dim=2)
            for low, high in zip(r.core_bounds, r.core_bounds[1:])
        ], dim=2)
        cells = torch.stack([
            rows[..., low:high].sum(dim=3)
            for low, high in zip(c.core_bounds, c.core_bounds[1:])
        ], dim=3)
        means = cells / self._core_areas(x.device, x.dtype)
        return means.permute(0, 2, 3, 1).reshape(-1, x.shape[1])

    def _core_areas(self, device: torch.device,
                    dtype: torch.dtype) -> Tensor:

        def make() -> Tensor:
            rows = torch.tensor(self.rows.core_sizes(), dtype=dtype)
            cols = torch.tensor(self.cols.core_sizes(), dtype=dtype)
            return (rows[:, None] * cols[None, :]).clamp_min(1.0).to(device)

        return self._cached(('areas', device, dtype), make)

    def crop(self, y: Tensor) -> Tensor:
        """Keep the ``patch`` outputs of each window that are its own."""
        r, c = self.rows, self.cols
        return y[:, :, r.crop:r.crop + r.patch, c.crop:c.crop + c.patch]

    def assemble(self, patches: Tensor, batch: int) -> Tensor:
        """Put patches (B * gh * gw, C, ph, pw) back into (B, C, Ho, Wo)."""
        r, c = self.rows, self.cols
        cells = patches.view(batch, r.count, c.count, *patches.shape[1:])
        rows = [
            torch.cat([
                cells[:, i, j, :, :r.sizes[i], :c.sizes[j]]
                for j in range(c.count)
            ], dim=3) for i in range(r.count)
        ]
        return torch.cat(rows, dim=2)


class Slot(NamedTuple):
    """Where one (patch, expert) pair's output comes from.

    Attributes:
        output (int): Which expert output tensor.
        sample (int): Sample of that tensor (window or image).
        patch (int): The patch, in the layout's order.
        weight (int): Index of its mixing weight in the flat (T * k)
            weights.
        top (int): Row of the patch's first output pixel in the sample.
        left (int): Its column.
    """
    output: int
    sample: int
    patch: int
    weight: int
    top: int
    left: int


class _GatherWindows(torch.autograd.Function):
    """Windows of chosen patches, copied straight from the input map.

    Window parts outside the input are zeros. The backward pass adds each
    window's gradient into one gradient of the input map, instead of one
    map-sized gradient per window as slicing under autograd would.
    """

    @staticmethod
    def forward(ctx, layout: 'PatchLayout', groups: Sequence[Sequence[int]],
                tight: bool, x: Tensor) -> Tuple[Tensor, ...]:
        ctx.layout, ctx.groups, ctx.tight = layout, groups, tight
        ctx.shape = x.shape
        size = layout.window_size(tight)
        outs = []
        for patches in groups:
            out = x.new_empty((len(patches), x.shape[1]) + size)
            for sample, patch in enumerate(patches):
                image, (top, bottom, dst_top), (left, right, dst_left) = (
                    layout.window_box(patch, tight))
                dst = out[sample]
                dst[:, dst_top:dst_top + bottom - top,
                    dst_left:dst_left + right - left].copy_(
                        x[image, :, top:bottom, left:right])
                _zero_outside(dst, dst_top, dst_top + bottom - top, dst_left,
                              dst_left + right - left)
            outs.append(out)
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads: Optional[Tensor]):
        layout = ctx.layout
        grad_x = None
        for patches, grad in zip(ctx.groups, grads):
            if grad is None:
                continue
            if grad_x is None:
                grad_x = grad.new_zeros(ctx.shape)
            for sample, patch in enumerate(patches):
                image, (top, bottom, dst_top), (left, right, dst_left) = (
                    layout.window_box(patch, ctx.tight))
                grad_x[image, :, top:bottom, left:right] += grad[
                    sample, :, dst_top:dst_top + bottom - top,
                    dst_left:dst_left + right - left]
        return None, None, None, grad_x


def _zero_outside(window: Tensor, top: int, bottom: int, left: int,
                  right: int) -> None:
    """Zero a window (C, h, w) outside rows top:bottom, columns left:right
    (no calls for empty borders: most windows have none or one)."""
    height, width = window.shape[1:]
    if top > 0:
        window[:, :top].zero_()
    if bottom < height:
        window[:, bottom:].zero_()
    if left > 0:
        window[:, top:bottom, :left].zero_()
    if right < width:
        window[:, top:bottom, right:].zero_()


def gather_windows(x: Tensor,
                   layout: 'PatchLayout',
                   groups: Sequence[Sequence[int]],
                   tight: bool = False) -> Tuple[Tensor, ...]:
    """Stacked windows (P, C, Lh, Lw) of each group of patches.

    Args:
        x (Tensor): The input map (B, C, H, W).
        layout (PatchLayout): Its patch layout.
        groups (list[list[int]]): Patch indices (layout order) per group.
        tight (bool): Tight windows, for experts run without their first
            convolution's padding. Default: False.

    Returns:
        tuple[Tensor]: One tensor per group; equal to
        ``layout.extract(x)[patches]`` (cut to the tight windows), without
        making all windows.
    """
    return _GatherWindows.apply(layout, groups, tight, x)


class _MixPatches(torch.autograd.Function):
    """The layer's output: every patch's weighted expert outputs, summed
    and put in place in one new map (no per-patch buffers, no scatter)."""

    @staticmethod
    def forward(ctx, layout: 'PatchLayout', batch: int, slots: Sequence[Slot],
                weights: Tensor, sum_to_one: bool, *outputs: Tensor) -> Tensor:
        ctx.layout, ctx.slots = layout, slots
        ctx.save_for_backward(weights, *outputs)
        first = outputs[0]
        out = first.new_empty((batch, first.shape[1]) + layout.out_size)
        each = weights.to(first.dtype).unbind(0)
        by_patch: Dict[int, List[Slot]] = {}
        for slot in slots:
            by_patch.setdefault(slot.patch, []).append(slot)
        for group in by_patch.values():
            dst, src = _slot_views(layout, out, outputs, group[0])
            if sum_to_one and len(group) == 2:
                # w1 * a + w2 * b with w2 = 1 - w1, in one pass.
                _, other = _slot_views(layout, out, outputs, group[1])
                torch.lerp(other, src, each[group[0].weight], out=dst)
                continue
            torch.mul(src, each[group[0].weight], out=dst)
            for slot in group[1:]:
                _, src = _slot_views(layout, out, outputs, slot)
                dst.addcmul_(src, each[slot.weight])
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        weights, *outputs = ctx.saved_tensors
        layout, slots = ctx.layout, ctx.slots
        needs = ctx.needs_input_grad
        # Each slot's region is written once; only an output whose slots do
        # not tile it whole (patches smaller than the common size) needs
        # zeros around them.
        covered = [0] * len(outputs)
        for slot in slots:
            _, _, height, _, width = layout.output_box(slot.patch)
            covered[slot.output] += height * width
        grad_outputs = [
            None if not need else
            torch.empty_like(y) if covered[index] * y.shape[1] == y.numel()
            else torch.zeros_like(y)
            for index, (y, need) in enumerate(zip(outputs, needs[5:]))
        ]
        each = weights.to(grad.dtype).unbind(0)
        dots: List[Optional[Tensor]] = [None] * weights.shape[0]
        for slot in slots:
            src_grad, src = _slot_views(layout, grad, outputs, slot)
            dst = grad_outputs[slot.output]
            if dst is not None:
                _, view = _slot_views(layout, grad, grad_outputs, slot)
                torch.mul(src_grad, each[slot.weight], out=view)
            if needs[3]:
                dots[slot.weight] = (src_grad * src).sum()
        grad_weights = (torch.stack(dots).to(weights.dtype)
                        if needs[3] else None)
        return (None, None, None, grad_weights, None, *grad_outputs)


def _slot_views(layout: 'PatchLayout', out: Tensor,
                outputs: Sequence[Tensor], slot: Slot) -> Tuple[Tensor, Tensor]:
    """The patch's region in ``out`` and in its expert output."""
    image, top, height, left, width = layout.output_box(slot.patch)
    dst = out[image, :, top:top + height, left:left + width]
    src = outputs[slot.output][slot.sample, :, slot.top:slot.top + height,
                               slot.left:slot.left + width]
    return dst, src


def mix_patches(layout: 'PatchLayout',
                batch: int,
                slots: Sequence[Slot],
                weights: Tensor,
                outputs: Sequence[Tensor],
                sum_to_one: bool = False) -> Tensor:
    """Sum each patch's expert outputs times their weights, in place.

    Args:
        layout (PatchLayout): The patch layout.
        batch (int): Images B.
        slots (list[Slot]): Every (patch, expert) pair, k per patch.
        weights (Tensor): Flat mixing weights (T * k).
        outputs (list[Tensor]): Expert outputs the slots point into.
        sum_to_one (bool): Each patch's weights sum to 1 (top-k routing
            renormalises them), so two outputs mix in one pass (``lerp``).
            Default: False.

    Returns:
        Tensor: (B, C_out, Ho, Wo).
    """
    return _MixPatches.apply(layout, batch, slots, weights, sum_to_one,
                             *outputs)
