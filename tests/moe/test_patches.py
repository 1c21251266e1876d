"""Patch layout: splits, halo windows, and the gate's pooling region."""
import pytest
import torch
from torch import nn

from moe_seg_plugin.moe.geometry import ChainAxis, conv_stages
from moe_seg_plugin.moe.dispatch import gather_windows, put_back
from moe_seg_plugin.moe.patches import axis_layout, split_axis


@pytest.mark.parametrize('size,grid', [(9, 4), (5, 4), (37, 3), (4, 4),
                                       (53, 4)])
def test_grid_split_has_no_padding_only_patch(size, grid):
    starts, sizes, patch = split_axis(size, grid, None, 'height')
    assert len(sizes) == grid and min(sizes) >= 1
    assert sum(sizes) == size and max(sizes) - min(sizes) <= 1
    assert patch == max(sizes)
    assert starts == [sum(sizes[:i]) for i in range(grid)]


def test_patch_size_split_pads_last_patch_only():
    starts, sizes, patch = split_axis(37, None, 8, 'width')
    assert starts == [0, 8, 16, 24, 32] and sizes == [8, 8, 8, 8, 5]
    assert patch == 8


def _axis(conv: nn.Module, size: int, grid: int):
    stages = conv_stages(conv)
    return axis_layout(ChainAxis(tuple(s.rows for s in stages)), size, grid,
                       None, 'height')


def test_halo_is_the_receptive_field_radius():
    axis = _axis(nn.Conv2d(1, 1, 3, padding=6, dilation=6), 30, 3)
    # A window is the input its 10 outputs read: 6 pixels either side.
    assert axis.patch == 10 and axis.window == 10 + 2 * 6
    assert axis.window_starts == [-6, 4, 14]
    # The first and last windows reach 6 pixels past the input.
    assert axis.window_starts[-1] + axis.window - 30 == 6
    # Owned input pixels for gating are the patch's own, no halo.
    assert axis.core_bounds == [0, 10, 20, 30]


def test_windows_follow_the_stages_backwards():
    """3x3 pad 1, then 3x3 stride 2 pad 2 dilation 2: each stage's window
    output and where it starts in that stage's dense output."""
    seq = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1),
                        nn.Conv2d(1, 1, 3, stride=2, padding=2, dilation=2))
    axis = _axis(seq, 20, 2)
    assert axis.stage_sizes == [20, 10] and axis.sizes == [5, 5]
    assert axis.stage_lengths == [13, 5]
    assert axis.stage_starts == [[-2, 8], [0, 5]]
    assert axis.window == 15 and axis.window_starts == [-3, 7]
    # Stage 0's output outside 0..19 is where stage 1 reads zero padding.
    assert axis.stage_mask(0) == [[0.0] * 2 + [1.0] * 11, [1.0] * 12 + [0.0]]


def test_strided_layout_owns_the_whole_input():
    axis = _axis(nn.Conv2d(1, 1, 3, stride=2, padding=1), 37, 3)
    assert axis.out_size == 19 and axis.sizes == [7, 6, 6]
    bounds = axis.core_bounds
    assert bounds[0] == 0 and bounds[-1] == 37
    assert all(a < b for a, b in zip(bounds, bounds[1:]))


def test_gate_pools_owned_real_pixels_only():
    """cell_means averages each patch's own input pixels: no halo, no
    zero padding past the image."""
    from moe_seg_plugin.moe import PatchConvMoE
    moe = PatchConvMoE(nn.Conv2d(1, 1, 3, padding=1), num_experts=2,
                       top_k=1, grid=(2, 2))
    layout = moe.layout(5, 7)
    x = torch.arange(35, dtype=torch.float32).view(1, 1, 5, 7)
    expected = [x[0, 0, :3, :4].mean(), x[0, 0, :3, 4:].mean(),
                x[0, 0, 3:, :4].mean(), x[0, 0, 3:, 4:].mean()]
    torch.testing.assert_close(layout.cell_means(x).flatten(),
                               torch.stack(expected))


def test_gather_windows_cuts_windows_with_zeros_past_the_map():
    from moe_seg_plugin.moe import PatchConvMoE
    layout = PatchConvMoE(nn.Conv2d(2, 3, 3, padding=1),
                          grid=(2, 3)).layout(7, 10)
    x = torch.randn(2, 2, 7, 10)
    padded = nn.functional.pad(x, (1, 1, 1, 1))
    patches = torch.tensor([11, 0, 4, 4])  # any order, repeats allowed
    windows = gather_windows(x, layout, patches)
    r, c = layout.rows, layout.cols
    assert windows.shape == (4, 2, r.window, c.window) == (4, 2, 6, 6)
    for index, patch in enumerate(patches.tolist()):
        image, cell = divmod(patch, 6)
        top, left = r.window_starts[cell // 3], c.window_starts[cell % 3]
        # Rows 4..9 of a 9-row padded map: the last window's row past the
        # padded map is zero too.
        want = torch.zeros(2, 6, 6)
        part = padded[image, :, top + 1:top + 7, left + 1:left + 7]
        want[:, :part.shape[1], :part.shape[2]] = part
        torch.testing.assert_close(windows[index], want)


def test_put_back_puts_patches_in_place_and_drops_padding():
    """Patches of unequal sizes (4, 3 rows; 4, 3, 3 columns), stored at
    the common 4x4: each output pixel comes from its own patch."""
    from moe_seg_plugin.moe import PatchConvMoE
    layout = PatchConvMoE(nn.Conv2d(1, 1, 1), grid=(2, 3)).layout(7, 10)
    patches = torch.randn(2 * 6, 1, 4, 4, requires_grad=True)
    out = put_back(patches, layout, 2)
    assert out.shape == (2, 1, 7, 10)
    r, c = layout.rows, layout.cols
    for t in range(12):
        image, cell = divmod(t, 6)
        i, j = divmod(cell, 3)
        h, w = r.sizes[i], c.sizes[j]
        torch.testing.assert_close(
            out[image, :, r.starts[i]:r.starts[i] + h,
                c.starts[j]:c.starts[j] + w], patches[t, :, :h, :w])
    out.sum().backward()
    assert patches.grad.sum() == 70 * 2  # padded parts get no gradient


def test_output_keeps_the_input_memory_format():
    """Contiguous in, contiguous out (views like ``.view(b, c, -1)`` work
    downstream); channels-last in, channels-last out (no copy back); the
    values equal either way."""
    from moe_seg_plugin.moe import PatchConvMoE
    torch.manual_seed(0)
    moe = PatchConvMoE(nn.Conv2d(4, 6, 3, padding=1), num_experts=3,
                       top_k=2, grid=(2, 2)).eval()
    x = torch.randn(2, 4, 9, 13)
    with torch.no_grad():
        plain = moe(x)
        last = moe(x.contiguous(memory_format=torch.channels_last))
    assert plain.is_contiguous()
    assert last.is_contiguous(memory_format=torch.channels_last)
    plain.view(2, 6, -1)
    torch.testing.assert_close(plain, last)


def test_runs_in_bfloat16_autocast():
    from moe_seg_plugin.moe import PatchConvMoE
    torch.manual_seed(0)
    moe = PatchConvMoE(nn.Conv2d(4, 6, 3, padding=1), num_experts=3,
                       top_k=2, grid=(2, 2))
    x = torch.randn(2, 4, 9, 13, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = moe(x)
    out.float().square().mean().backward()
    assert out.dtype == torch.bfloat16 and out.shape == (2, 6, 9, 13)
    with torch.no_grad():
        want = moe(x)
    torch.testing.assert_close(out.float(), want, atol=0.1, rtol=0.05)
    assert x.grad is not None and torch.isfinite(x.grad).all()
