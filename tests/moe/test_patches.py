"""Patch layout: splits, halo windows, and the gate's pooling region."""
import pytest
import torch
from torch import nn

from moe_seg_plugin.moe.gates import masked_mean
from moe_seg_plugin.moe.geometry import ChainAxis, conv_stages
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
    assert axis.patch == 10 and axis.crop == 6
    assert axis.window == 10 + 2 * 6
    assert axis.window_starts == [-6, 4, 14]
    # Owned input pixels for gating are the patch's own, no halo.
    assert axis.core_bounds == [0, 10, 20, 30]


def test_strided_layout_owns_the_whole_input():
    axis = _axis(nn.Conv2d(1, 1, 3, stride=2, padding=1), 37, 3)
    assert axis.out_size == 19 and axis.sizes == [7, 6, 6]
    bounds = axis.core_bounds
    assert bounds[0] == 0 and bounds[-1] == 37
    assert all(a < b for a, b in zip(bounds, bounds[1:]))


def test_gate_pools_owned_real_pixels_only():
    """The core mask excludes halo and the zero padding past the image."""
    from moe_seg_plugin.moe import PatchConvMoE
    moe = PatchConvMoE(nn.Conv2d(1, 1, 3, padding=1), num_experts=2,
                       top_k=1, grid=(2, 2))
    layout = moe.layout(5, 7)
    x = torch.arange(35, dtype=torch.float32).view(1, 1, 5, 7)
    windows = layout.extract(x)
    core = layout.core_mask(x.device, x.dtype)
    means = masked_mean(windows, core).flatten()
    expected = [x[0, 0, :3, :4].mean(), x[0, 0, :3, 4:].mean(),
                x[0, 0, 3:, :4].mean(), x[0, 0, 3:, 4:].mean()]
    torch.testing.assert_close(means, torch.stack(expected))



@pytest.mark.parametrize('sum_to_one', [False, True])
def test_mix_patches_is_the_weighted_sum(sum_to_one):
    """Two whole-map outputs mixed per patch: values and gradients equal
    the weighted sum written out with weight maps."""
    from moe_seg_plugin.moe.layer import PatchConvMoE
    from moe_seg_plugin.moe.patches import Slot, mix_patches
    torch.manual_seed(0)
    layout = PatchConvMoE(nn.Conv2d(2, 3, 3, padding=1)).layout(10, 14)
    patches = 2 * layout.cells
    weights = torch.rand(patches, 2)
    if sum_to_one:
        weights = weights / weights.sum(1, keepdim=True)
    weights.requires_grad_()
    outputs = [torch.randn(2, 3, 10, 14, requires_grad=True) for _ in '01']
    slots = []
    for patch in range(patches):
        image, top, _, left, _ = layout.output_box(patch)
        slots += [Slot(rank, image, patch, 2 * patch + rank, top, left)
                  for rank in range(2)]
    mixed = mix_patches(layout, 2, slots, weights.reshape(-1), outputs,
                        sum_to_one)
    # Patches are 4x5 (padded size); assemble crops them to their cells.
    maps = [
        layout.assemble(weights[:, r].view(-1, 1, 1, 1).expand(-1, 1, 4, 5),
                        2) for r in range(2)
    ]
    expected = outputs[0] * maps[0] + outputs[1] * maps[1]
    torch.testing.assert_close(mixed, expected)
    grad = torch.randn_like(mixed)
    inputs = [weights] + outputs
    got = torch.autograd.grad(mixed, inputs, grad)
    want = torch.autograd.grad(expected, inputs, grad)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
