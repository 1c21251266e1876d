"""Cutting a feature map into patches with halo, and putting them back.

The grid is laid over the replaced layer's *output*: along each axis the
output is split into patches whose sizes differ by at most one pixel (grid
mode) or are a fixed size with a shorter last patch (patch-size mode); every
patch holds at least one real pixel. Patches are padded to one common size so
that they stack into a batch, and each patch's window is cut from the input
with the halo its expert's receptive field needs, so at a patch border the
expert sees exactly what the dense layer sees.
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

    @property
    def count(self) -> int:
        return len(self.starts)

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

    Returns:
        tuple: Patch starts, real sizes, and the common padded length.
    """
    if out_size < 1:
        raise ValueError(f'the replaced layer gives an empty output along '
                         f'the {axis} for this input')
    if grid is not None:
        if grid > out_size:
            raise ValueError(
                f'grid: {grid} patches along the {axis} do not fit the '
                f"layer's output {axis} of {out_size} pixels; use a grid of "
                f'at most {out_size} there, or patch_size')
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
                      stage_sizes, chain.cumulative_strides())


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

    @property
    def grid(self) -> Tuple[int, int]:
        return self.rows.count, self.cols.count

    @property
    def cells(self) -> int:
        return self.rows.count * self.cols.count

    @property
    def out_size(self) -> Tuple[int, int]:
        return self.rows.out_size, self.cols.out_size

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
