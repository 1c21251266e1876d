"""Cutting a feature map into patch windows, and putting patches back.

The grid is laid over the replaced layer's *output*: along each axis the
output is split into patches whose sizes differ by at most one pixel (grid
mode) or are a fixed size with a shorter last patch (patch-size mode); every
patch holds at least one real pixel. Patches are padded to one common size
so that they stack into a batch. A patch's *window* is exactly the input its
outputs read: the patch plus the halo of the experts' receptive field, with
zeros where it lies past the map (the replaced layer's own zero padding).
Experts run on windows without padding of their own, so a window yields
its patch's outputs and nothing else.

:func:`patchify` gathers the windows of any list of patches and
:func:`combine` mixes patch outputs back into a map, each with a number of
operations that depends on neither the batch nor the number of patches.
Both work on pixel rows (channels-last: each pixel's channels side by
side), so that a gather moves whole rows; the experts run channels-last too
(the faster convolution on a CPU, and the layout tensor cores want).
"""
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

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
    """

    def __init__(self, rows: AxisLayout, cols: AxisLayout) -> None:
        self.rows = rows
        self.cols = cols
        self.grid = (rows.count, cols.count)
        self.cells = rows.count * cols.count
        self.out_size = (rows.out_size, cols.out_size)
        self._tensors: Dict[tuple, Dict[str, Tensor]] = {}

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

    def tensors(self, device: torch.device,
                dtype: torch.dtype) -> Dict[str, Tensor]:
        """The layout's index and mask tensors on ``device``, made once:

        - 'cell_windows': (gh * gw, Lh * Lw) each window's pixels, row
          after row, as indices into one image's pixels (row-major), -1
          where the window lies past the image (zero padding);
        - 'pixel_cells', 'pixel_offsets': (Ho * Wo,) for each output pixel,
          its patch's grid cell and its place in the patch (``ph * pw``
          places);
        - 'areas': (gh, gw) pixels each patch owns (at least 1);
        - 'stage_<j>': (gh * gw, 1, h, w), 1 where a window's output of
          stage j lies inside the stage's dense output
          (:meth:`AxisLayout.stage_mask`).
        """
        key = (device, dtype)
        found = self._tensors.get(key)
        if found is None:
            found = self._make_tensors(device, dtype)
            self._tensors[key] = found
        return found

    def _make_tensors(self, device: torch.device,
                      dtype: torch.dtype) -> Dict[str, Tensor]:
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
        made = {
            'cell_windows': windows.reshape(self.cells, -1),
            'pixel_cells': (row_cells[:, None] * c.count +
                            col_cells[None, :]).reshape(-1),
            'pixel_offsets': (row_within[:, None] * c.patch +
                              col_within[None, :]).reshape(-1),
            'areas': torch.tensor(
                [[max(h, 1) * max(w, 1) for w in c.core_sizes]
                 for h in r.core_sizes], dtype=dtype, device=device),
        }
        for stage in range(len(r.stage_sizes)):
            rows = torch.tensor(r.stage_mask(stage), dtype=dtype)
            cols = torch.tensor(c.stage_mask(stage), dtype=dtype)
            mask = rows[:, None, :, None] * cols[None, :, None, :]
            made[f'stage_{stage}'] = mask.reshape(
                self.cells, 1, rows.shape[1], cols.shape[1]).to(device)
        return made

    def place(self, record, batch: int):
        """Fill in a RoutingRecord's grid and where its cells lie, for
        ``batch`` images (returns the record)."""
        record.grid = (batch, ) + self.grid
        record.row_starts = tuple(self.rows.starts)
        record.row_sizes = tuple(self.rows.sizes)
        record.col_starts = tuple(self.cols.starts)
        record.col_sizes = tuple(self.cols.sizes)
        record.out_size = self.out_size
        return record

    def stage_mask(self, stage: int, patches: Tensor, like: Tensor) -> Tensor:
        """The masks (P, 1, h, w) of ``patches``' window outputs of
        ``stage`` (``'stage_<j>'`` of :meth:`tensors`); ``like`` gives
        device and dtype."""
        found = self.tensors(like.device, like.dtype)[f'stage_{stage}']
        return found.index_select(0, patches % self.cells)

    def cell_means(self, x: Tensor) -> Tensor:
        """Mean of ``x`` (B, C, H, W) over the input pixels each patch owns
        (one pass over the map: sums over the parts of a split, one op per
        grid row and per grid column).

        Returns:
            Tensor: Shape (B * gh * gw, C), patches in the layout's order.
        """
        r, c = self.rows, self.cols
        # split, not slices: a slice's backward fills a zero map of the
        # whole input, a split's puts the parts side by side once.
        rows = torch.stack([
            part.sum(dim=2) for part in x.split(r.core_sizes, dim=2)
        ], dim=2)
        cells = torch.stack([
            part.sum(dim=3) for part in rows.split(c.core_sizes, dim=3)
        ], dim=3)
        means = cells / self.tensors(x.device, x.dtype)['areas']
        return means.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def patchify(x: Tensor, layout: PatchLayout, patches: Tensor) -> Tensor:
    """The windows of ``patches``, gathered from a channels-last copy of
    ``x`` with one index select (its rows are pixels, so each gathered row
    is one pixel's channels in a row).

    Args:
        x (Tensor): The input map (B, C, H, W).
        layout (PatchLayout): Its patch layout.
        patches (Tensor): Patch indices (S,) in the layout's order; any
            order, repeats allowed.

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
    found = layout.tensors(x.device, x.dtype)
    inside = found['cell_windows'].index_select(0, cell)
    index = torch.where(inside >= 0,
                        inside + (image * (height * width))[:, None],
                        batch * height * width)
    windows = pixels.index_select(0, index.reshape(-1))
    return windows.view(-1, r.window, c.window, channels).permute(0, 3, 1, 2)


def combine(outputs: Tensor, layout: PatchLayout, slots: Tensor,
            weights: Optional[Tensor], batch: int,
            channels_last: bool = False) -> Tensor:
    """Mix patch outputs into the output map: each output pixel is the
    weighted sum of the same pixel of its patch's k outputs, one
    ``embedding_bag`` over the outputs' pixels.

    Args:
        outputs (Tensor): (S, C, ph, pw) patch outputs, any order.
        layout (PatchLayout): The patch layout.
        slots (Tensor): (B * gh * gw, k) for each patch (layout order), the
            rows of ``outputs`` to mix.
        weights (Tensor, optional): (B * gh * gw, k) their mixing weights;
            None sums them.
        batch (int): B.
        channels_last (bool): Return the map in channels-last memory format
            (free) instead of contiguous (one transposing copy).

    Returns:
        Tensor: (B, C, Ho, Wo); patches' padded parts are dropped.
    """
    r, c = layout.rows, layout.cols
    found = layout.tensors(outputs.device, outputs.dtype)
    cells, k = found['pixel_cells'], slots.shape[1]
    # Mixed pixels in (image, pixel) order for a channels-last map, else in
    # (pixel, image) order: then (pixels, B * C) -> (B * C, pixels) is one
    # 2-D transpose, which torch copies blockwise (3x faster on a CPU than
    # a 4-D permute).
    order = (0, 1, 2) if channels_last else (1, 0, 2)
    source = (slots.view(batch, layout.cells, k).index_select(1, cells) *
              (r.patch * c.patch) + found['pixel_offsets'][:, None]).permute(
                  order)
    if weights is not None:
        weights = weights.view(batch, layout.cells, k).index_select(
            1, cells).permute(order).reshape(-1, k).to(outputs.dtype)
    pixels = outputs.permute(0, 2, 3, 1).reshape(-1, outputs.shape[1])
    mixed = _weighted_gather(pixels, source.reshape(-1, k), weights)
    if channels_last:
        return mixed.view(batch, r.out_size, c.out_size, -1).permute(
            0, 3, 1, 2)
    planes = mixed.view(r.out_size * c.out_size, -1).t().contiguous()
    return planes.view(batch, -1, r.out_size, c.out_size)


def _weighted_gather(rows: Tensor, index: Tensor,
                     weights: Optional[Tensor]) -> Tensor:
    """For each row of ``index`` (P, k), the sum of those ``rows`` times
    ``weights`` (P, k), or plain if None: one ``embedding_bag``. ONNX has no
    such op (the exporter writes a loop over the P bags, 250x slower than
    the stock model in onnxruntime), so an export gathers and sums."""
    if not torch.onnx.is_in_onnx_export():
        return F.embedding_bag(index, rows, mode='sum',
                               per_sample_weights=weights)
    gathered = rows.index_select(0, index.reshape(-1)).view(
        *index.shape, rows.shape[1])
    if weights is not None:
        gathered = gathered * weights.unsqueeze(-1)
    return gathered.sum(dim=1)


def depatchify(patches: Tensor, layout: PatchLayout, batch: int) -> Tensor:
    """Put one output per patch (B * gh * gw, C, ph, pw), in the layout's
    order, back into a map (B, C, Ho, Wo); padded parts are dropped."""
    order = torch.arange(patches.shape[0], device=patches.device)
    return combine(patches, layout, order[:, None], None, batch)


def all_patches(layout: PatchLayout, batch: int,
                device: torch.device) -> Tensor:
    """Every patch index of a batch, in order (B * gh * gw,)."""
    return torch.arange(batch * layout.cells, device=device)


__all__ = [
    'AxisLayout', 'PatchLayout', 'split_axis', 'axis_layout', 'patchify',
    'combine', 'depatchify', 'all_patches'
]
