"""Where patches and their windows lie: the layout, not the data.

The grid is laid over the replaced layer's *output*: along each axis the
output is split into patches whose sizes differ by at most one pixel (grid
mode) or are a fixed size with a shorter last patch (patch-size mode); every
patch holds at least one real pixel. Patches are padded to one common size
so that they stack into a batch. A patch's *window* is exactly the input its
outputs read: the patch plus the halo of the experts' receptive field, with
zeros where it lies past the map (the replaced layer's own zero padding).
Experts run on windows without padding of their own, so a window yields
its patch's outputs and nothing else.

:class:`PatchLayout` holds, per input size, where each patch and window
lies, and its index tables (:class:`LayoutTables`) on each device. The
steps that move data along them (gather the windows, run the experts, mix
and put the patches back) are in :mod:`.dispatch`; the one pass over the
map here is the gate's pool, :meth:`PatchLayout.cell_means` (each patch's
mean over the input pixels it owns).
"""
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
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
        window (int): Input window length: the input a patch's ``patch``
            outputs read.
        window_starts (list[int]): Start of each window in input pixels
            (negative inside the leading padding).
        core_bounds (list[int]): Input pixels each patch owns for gating:
            patch i owns ``core_bounds[i]`` to ``core_bounds[i + 1]``.
        stage_sizes (list[int]): Dense output length after each stage.
        stage_starts (list[list[int]]): Per stage, where each patch's
            window output of that stage starts in the stage's dense output.
        stage_lengths (list[int]): Per stage, the length of a window's
            output (the last stage's is ``patch``).
    """
    in_size: int
    out_size: int
    starts: List[int]
    sizes: List[int]
    patch: int
    window: int
    window_starts: List[int]
    core_bounds: List[int]
    stage_sizes: List[int]
    stage_starts: List[List[int]]
    stage_lengths: List[int]

    def __post_init__(self) -> None:
        #: Number of patches.
        self.count = len(self.starts)
        bounds = self.core_bounds
        #: Input pixels each patch owns for gating (they add up to the
        #: input: the bounds run from 0 to ``in_size`` without going back).
        self.core_sizes = [b - a for a, b in zip(bounds, bounds[1:])]

    def window_spans(self) -> List[Tuple[int, int, int]]:
        """Per patch, the part of its window that lies in the input:
        (first pixel, end pixel, where that part starts in the window);
        the rest of the window is zero padding ((0, 0, 0) for a window
        wholly in the padding of an over-padded layer)."""
        spans = []
        for start in self.window_starts:
            first, end = max(start, 0), min(start + self.window, self.in_size)
            spans.append((first, end, first - start) if end > first else
                         (0, 0, 0))
        return spans

    def window_index(self) -> List[List[int]]:
        """Per patch, the input positions of its window (negative or past
        the input where it lies in the zero padding)."""
        return [[start + t for t in range(self.window)]
                for start in self.window_starts]

    def pixel_index(self) -> Tuple[List[int], List[int]]:
        """For each output pixel, its patch and its position in that
        patch."""
        patches = [i for i, size in enumerate(self.sizes)
                   for _ in range(size)]
        within = [t for size in self.sizes for t in range(size)]
        return patches, within

    def stage_mask(self, stage: int) -> List[List[float]]:
        """Per patch, 1 where its window output of ``stage`` lies inside
        the stage's dense output (outside, the dense layer's next stage
        reads zero padding)."""
        size = self.stage_sizes[stage]
        return [[
            1.0 if 0 <= start + t < size else 0.0
            for t in range(self.stage_lengths[stage])
        ] for start in self.stage_starts[stage]]


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
    clipped to one patch per pixel (:meth:`PatchLayout.clipped` says so);
    a patch size longer than the output gives one patch of the whole output
    (:meth:`PatchLayout.oversized` says so).

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

    The windows follow from the patches backwards through the stages: the
    ``n`` outputs of a stage from position ``o`` read its input from
    ``o * stride - pad_before``, ``(n - 1) * stride + extent`` pixels.

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
    stage_starts: List[List[int]] = []
    stage_lengths: List[int] = []
    first, length = list(starts), patch
    for stage in reversed(chain.stages):
        stage_starts.insert(0, first)
        stage_lengths.insert(0, length)
        first = [o * stage.stride - stage.pad_before for o in first]
        length = (length - 1) * stage.stride + stage.extent
    stride, extent = chain.stride, chain.extent
    centre = (extent - 1) // 2 - chain.pad_before
    bounds = [0] + [
        min(max(start * stride + centre, 0), in_size)
        for start in starts[1:]
    ] + [in_size]
    return AxisLayout(in_size, out_size, starts, sizes, patch, length, first,
                      bounds, stage_sizes, stage_starts, stage_lengths)


@dataclass(frozen=True)
class LayoutTables:
    """A layout's index and mask tensors on one device, in one dtype
    (:meth:`PatchLayout.tables` makes them once).

    Attributes:
        cell_windows (Tensor): (gh * gw, Lh * Lw) each window's pixels, row
            after row, as indices into one image's pixels (row-major), -1
            where the window lies past the image (zero padding).
        pixel_cells (Tensor): (Ho * Wo,) for each output pixel, its patch's
            grid cell.
        pixel_offsets (Tensor): (Ho * Wo,) for each output pixel, its place
            in its patch (``ph * pw`` places, row-major).
        areas (Tensor): (gh, gw) input pixels each patch owns (at least 1).
        stage_masks (tuple[Tensor, ...]): Per stage j, (gh * gw, 1, h, w):
            1 where a window's output of stage j lies inside the stage's
            dense output (:meth:`AxisLayout.stage_mask`).
    """
    cell_windows: Tensor
    pixel_cells: Tensor
    pixel_offsets: Tensor
    areas: Tensor
    stage_masks: Tuple[Tensor, ...]


@dataclass(frozen=True)
class CellBox:
    """Where one grid cell's window and patch lie (host ints), for the
    dispatch that cuts windows and places patches as views of the maps.

    Attributes:
        window_rows, window_cols (tuple[int, int, int]): The window's part
            inside the input: (first pixel, end pixel, where it starts in
            the window) per axis (:meth:`AxisLayout.window_spans`).
        patch_rows, patch_cols (tuple[int, int]): The patch's real output
            pixels: (first pixel, count) per axis; they start the patch's
            ``patch`` x ``patch`` outputs.
    """
    window_rows: Tuple[int, int, int]
    window_cols: Tuple[int, int, int]
    patch_rows: Tuple[int, int]
    patch_cols: Tuple[int, int]


@dataclass(frozen=True)
class Placement:
    """Where a batch's grid cells lie in the layer's output
    (:meth:`PatchLayout.placement`): the layout fields of a
    ``RoutingRecord``.

    Attributes:
        grid (tuple[int, int, int]): (B, gh, gw).
        row_starts, row_sizes (tuple[int, ...]): (gh,) first output row
            and rows of each grid row.
        col_starts, col_sizes (tuple[int, ...]): (gw,) the same for the
            grid columns.
        out_size (tuple[int, int]): The layer's output size (Ho, Wo).
    """
    grid: Tuple[int, int, int]
    row_starts: Tuple[int, ...]
    row_sizes: Tuple[int, ...]
    col_starts: Tuple[int, ...]
    col_sizes: Tuple[int, ...]
    out_size: Tuple[int, int]


class PatchLayout:
    """Patches of a whole feature map, with index tensors cached per device.

    Patches are ordered image by image, then row by row of the grid: patch
    ``t`` is image ``t // (gh * gw)``, grid cell ``t % (gh * gw)``.

    Args:
        rows (AxisLayout): Layout along the height.
        cols (AxisLayout): Layout along the width.

    Attributes:
        grid (tuple[int, int]): Patches per column and row (gh, gw).
        cells (int): gh * gw.
        out_size (tuple[int, int]): The replaced layer's output (Ho, Wo).
        boxes (tuple[CellBox, ...]): Per grid cell, where its window and
            patch lie.
    """

    def __init__(self, rows: AxisLayout, cols: AxisLayout) -> None:
        self.rows = rows
        self.cols = cols
        self.grid = (rows.count, cols.count)
        self.cells = rows.count * cols.count
        self.out_size = (rows.out_size, cols.out_size)
        self._tables: Dict[tuple, LayoutTables] = {}
        row_windows, col_windows = rows.window_spans(), cols.window_spans()
        #: Per grid cell (row-major), where its window and patch lie.
        self.boxes: Tuple[CellBox, ...] = tuple(
            CellBox(row_windows[i], col_windows[j],
                    (rows.starts[i], rows.sizes[i]),
                    (cols.starts[j], cols.sizes[j]))
            for i in range(rows.count) for j in range(cols.count))

    def clipped(self, grid: Optional[Tuple[int, int]]) -> bool:
        """Whether this layout has fewer patches than ``grid`` asks for
        (the output is smaller than the grid along an axis)."""
        return grid is not None and self.grid != tuple(grid)

    def oversized(self, patch_size: Optional[Tuple[int, int]]) -> bool:
        """Whether ``patch_size`` (rows, cols) is larger than the output
        along an axis (that axis then has one patch, of the whole
        output)."""
        return patch_size is not None and (patch_size[0] > self.out_size[0]
                                           or patch_size[1] > self.out_size[1])

    def tables(self, device: torch.device,
               dtype: torch.dtype) -> LayoutTables:
        """The layout's index and mask tensors on ``device``, the masks and
        areas in ``dtype``; made once per (device, dtype).

        Returns:
            LayoutTables: The tables.
        """
        key = (device, dtype)
        found = self._tables.get(key)
        if found is None:
            found = self._make_tables(device, dtype)
            self._tables[key] = found
        return found

    def _make_tables(self, device: torch.device,
                     dtype: torch.dtype) -> LayoutTables:
        """Build :meth:`tables` (index arithmetic of the two axes)."""
        r, c = self.rows, self.cols

        def longs(values) -> Tensor:
            return torch.tensor(values, dtype=torch.long, device=device)

        rows, cols = longs(r.window_index()), longs(c.window_index())
        inside = (((rows >= 0) & (rows < r.in_size))[:, None, :, None] &
                  ((cols >= 0) & (cols < c.in_size))[None, :, None, :])
        pixels = rows[:, None, :, None] * c.in_size + cols[None, :, None, :]
        windows = torch.where(inside, pixels, -1)
        row_cells, row_within = map(longs, r.pixel_index())
        col_cells, col_within = map(longs, c.pixel_index())
        masks = []
        for stage in range(len(r.stage_sizes)):
            rows = torch.tensor(r.stage_mask(stage), dtype=dtype)
            cols = torch.tensor(c.stage_mask(stage), dtype=dtype)
            mask = rows[:, None, :, None] * cols[None, :, None, :]
            masks.append(mask.reshape(self.cells, 1, rows.shape[1],
                                      cols.shape[1]).to(device))
        return LayoutTables(
            cell_windows=windows.reshape(self.cells, -1),
            pixel_cells=(row_cells[:, None] * c.count +
                         col_cells[None, :]).reshape(-1),
            pixel_offsets=(row_within[:, None] * c.patch +
                           col_within[None, :]).reshape(-1),
            areas=torch.tensor(
                [[max(h, 1) * max(w, 1) for w in c.core_sizes]
                 for h in r.core_sizes], dtype=dtype, device=device),
            stage_masks=tuple(masks))

    def placement(self, batch: int) -> Placement:
        """Where the grid cells of ``batch`` images lie (a RoutingRecord's
        layout fields).

        Returns:
            Placement: The grid (B, gh, gw) and the cells' pixels.
        """
        return Placement((batch, ) + self.grid, tuple(self.rows.starts),
                         tuple(self.rows.sizes), tuple(self.cols.starts),
                         tuple(self.cols.sizes), self.out_size)

    def stage_mask(self, stage: int, patches: Tensor, like: Tensor) -> Tensor:
        """The masks of ``patches``' window outputs of ``stage``.

        Args:
            stage (int): The stage j (``LayoutTables.stage_masks[j]``).
            patches (Tensor): (P,) patch indices in the layout's order.
            like (Tensor): Gives the masks' device and dtype.

        Returns:
            Tensor: (P, 1, h, w).
        """
        masks = self.tables(like.device, like.dtype).stage_masks[stage]
        return masks.index_select(0, patches % self.cells)

    def cell_means(self, x: Tensor) -> Tensor:
        """Mean of ``x`` over the input pixels each patch owns: the gate's
        pool (one pass over the map: sums over the parts of a split, one op
        per grid row and per grid column).

        Args:
            x (Tensor): The map (B, C, H, W).

        Returns:
            Tensor: Shape (B * gh * gw, C), patches in the layout's order.
        """
        r, c = self.rows, self.cols
        # split, not slices: a slice's backward fills a zero map of the
        # whole input, a split's puts the parts side by side once.
        row_sums = []
        for part in x.split(r.core_sizes, dim=2):
            row_sums.append(part.sum(dim=2))
        rows = torch.stack(row_sums, dim=2)
        cell_sums = []
        for part in rows.split(c.core_sizes, dim=3):
            cell_sums.append(part.sum(dim=3))
        cells = torch.stack(cell_sums, dim=3)
        means = cells / self.tables(x.device, x.dtype).areas
        return means.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def all_patches(layout: PatchLayout, batch: int,
                device: torch.device) -> Tensor:
    """Every patch index of a batch, in order (B * gh * gw,)."""
    return torch.arange(batch * layout.cells, device=device)


__all__ = [
    'AxisLayout', 'CellBox', 'LayoutTables', 'Placement', 'PatchLayout', 'split_axis',
    'axis_layout', 'all_patches'
]
