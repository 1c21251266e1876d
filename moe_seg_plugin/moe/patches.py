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

:func:`patchify` gathers the windows of any list of patches with index
operations whose number does not depend on the batch or the number of
patches; :func:`depatchify` puts one output per patch back into a map.
"""
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

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
        pad_before (int): Zeros added before the input so that every
            window starts inside the padded input.
        pad_after (int): Zeros added after it so that every window ends
            inside.
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
    pad_before: int
    pad_after: int
    core_bounds: List[int]
    stage_sizes: List[int]
    stage_starts: List[List[int]]
    stage_lengths: List[int]

    def __post_init__(self) -> None:
        #: Number of patches.
        self.count = len(self.starts)

    def core_sizes(self) -> List[int]:
        """Input pixels each patch owns for gating."""
        bounds = self.core_bounds
        return [max(b - a, 0) for a, b in zip(bounds, bounds[1:])]

    def window_index(self) -> List[int]:
        """Positions in the padded input of every window, window after
        window (``count * window`` entries)."""
        return [
            start + self.pad_before + t for start in self.window_starts
            for t in range(self.window)
        ]

    def output_index(self) -> List[int]:
        """For each output pixel, its position among the patches laid end
        to end at their common size (``count * patch`` positions)."""
        return [
            index * self.patch + t
            for index, size in enumerate(self.sizes) for t in range(size)
        ]

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
    pad_before = max(0, -min(first))
    pad_after = max(0, max(first) + length - in_size)
    stride, extent = chain.stride, chain.extent
    centre = (extent - 1) // 2 - chain.pad_before
    bounds = [0] + [
        min(max(start * stride + centre, 0), in_size)
        for start in starts[1:]
    ] + [in_size]
    return AxisLayout(in_size, out_size, starts, sizes, patch, length, first,
                      pad_before, pad_after, bounds, stage_sizes,
                      stage_starts, stage_lengths)


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

    def tensors(self, device: torch.device,
                dtype: torch.dtype) -> Dict[str, Tensor]:
        """The layout's index and mask tensors on ``device``, made once:

        - 'window_rows', 'window_cols': :meth:`AxisLayout.window_index`;
        - 'output_rows', 'output_cols': :meth:`AxisLayout.output_index`;
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

        made = {
            'window_rows': longs(r.window_index()),
            'window_cols': longs(c.window_index()),
            'output_rows': longs(r.output_index()),
            'output_cols': longs(c.output_index()),
            'areas': torch.tensor(
                [[max(h, 1) * max(w, 1) for w in c.core_sizes()]
                 for h in r.core_sizes()], dtype=dtype, device=device),
        }
        for stage in range(len(r.stage_sizes)):
            rows = torch.tensor(r.stage_mask(stage), dtype=dtype)
            cols = torch.tensor(c.stage_mask(stage), dtype=dtype)
            mask = rows[:, None, :, None] * cols[None, :, None, :]
            made[f'stage_{stage}'] = mask.reshape(
                self.cells, 1, rows.shape[1], cols.shape[1]).to(device)
        return made

    def cell_means(self, x: Tensor) -> Tensor:
        """Mean of ``x`` (B, C, H, W) over the input pixels each patch owns
        (one pass over the map: sums over slices, one op per grid row and
        per grid column).

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
        means = cells / self.tensors(x.device, x.dtype)['areas']
        return means.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def patchify(x: Tensor, layout: PatchLayout, patches: Tensor) -> Tensor:
    """The windows of ``patches``: one pad, two index selects for all
    windows' rows and columns, one gather of the chosen ones.

    Args:
        x (Tensor): The input map (B, C, H, W).
        layout (PatchLayout): Its patch layout.
        patches (Tensor): Patch indices (S,) in the layout's order; any
            order, repeats allowed.

    Returns:
        Tensor: (S, C, Lh, Lw), zeros where a window lies past the map.
    """
    r, c = layout.rows, layout.cols
    found = layout.tensors(x.device, x.dtype)
    padded = F.pad(x, (c.pad_before, c.pad_after, r.pad_before,
                       r.pad_after))
    windows = padded.index_select(2, found['window_rows']).index_select(
        3, found['window_cols'])
    windows = windows.view(x.shape[0], x.shape[1], r.count, r.window,
                           c.count, c.window)
    image = torch.div(patches, layout.cells, rounding_mode='floor')
    cell = patches - image * layout.cells
    row = torch.div(cell, c.count, rounding_mode='floor')
    # Index tensors in dims 0, 2, 4 around slices: the gathered dimension
    # comes first, (S, C, Lh, Lw).
    return windows[image, :, row, :, cell - row * c.count, :]


def depatchify(patches: Tensor, layout: PatchLayout, batch: int) -> Tensor:
    """Put one output per patch (B * gh * gw, C, ph, pw), in the layout's
    order, back into a map (B, C, Ho, Wo); padded parts are dropped."""
    r, c = layout.rows, layout.cols
    grid = patches.view(batch, r.count, c.count, patches.shape[1], r.patch,
                        c.patch)
    out = grid.permute(0, 3, 1, 4, 2, 5).reshape(
        batch, patches.shape[1], r.count * r.patch, c.count * c.patch)
    if r.count * r.patch != r.out_size:
        out = out.index_select(
            2, layout.tensors(out.device, out.dtype)['output_rows'])
    if c.count * c.patch != c.out_size:
        out = out.index_select(
            3, layout.tensors(out.device, out.dtype)['output_cols'])
    return out


def all_patches(layout: PatchLayout, batch: int,
                device: torch.device) -> Tensor:
    """Every patch index of a batch, in order (B * gh * gw,)."""
    return torch.arange(batch * layout.cells, device=device)


def stage_masks(layout: PatchLayout, masked: Sequence[bool],
                patches: Tensor, like: Tensor) -> List[Optional[Tensor]]:
    """Per stage of an expert, the masks (S, 1, h, w) of ``patches``' window
    outputs of the stage before it, for the stages whose input is
    ``masked`` (None elsewhere); ``like`` gives device and dtype."""
    if not any(masked):
        return [None] * len(masked)
    found = layout.tensors(like.device, like.dtype)
    cells = patches % layout.cells
    return [
        found[f'stage_{index - 1}'].index_select(0, cells) if mask else None
        for index, mask in enumerate(masked)
    ]


__all__ = [
    'AxisLayout', 'PatchLayout', 'split_axis', 'axis_layout', 'patchify',
    'depatchify', 'all_patches', 'stage_masks'
]
