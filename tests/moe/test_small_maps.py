"""Maps smaller than the grid: the grid is clipped, and an expert with a
batch norm that gets a one-pixel patch in training does not crash."""
import pytest
import torch
from mmcv.cnn import ConvModule

from moe_seg_plugin.moe import PatchConvMoE
from moe_seg_plugin.moe.reference import naive_forward, spread_bias

#: Every test runs with both dispatches (tests/moe/conftest.py).
pytestmark = pytest.mark.usefixtures('dispatch')


def _spread(layer: PatchConvMoE, patches: int) -> None:
    bias = spread_bias(patches, layer.num_experts, layer.top_k, scale=20.0)
    layer.gate.register_forward_hook(lambda m, args, out: out + bias)


@pytest.mark.parametrize('num_experts', [1, 4])
def test_three_by_three_grid_on_a_two_by_two_map(num_experts):
    torch.manual_seed(0)
    layer = PatchConvMoE(ConvModule(4, 5, 3, padding=1,
                                    norm_cfg=dict(type='BN')),
                         num_experts=num_experts, top_k=1,
                         grid=(3, 3)).eval()
    x = torch.randn(1, 4, 2, 2)
    with torch.no_grad():
        out = layer(x)
        torch.testing.assert_close(out, naive_forward(layer, x))
    assert out.shape == (1, 5, 2, 2)
    assert layer.last_routing.grid == (1, 2, 2)


@pytest.mark.parametrize('batch', [1, 2])
def test_one_pixel_patch_with_batch_norm_trains(batch):
    """Each expert takes one 1x1 patch of one image: its batch norm would
    see a single value per channel on windows; it runs on the map."""
    torch.manual_seed(0)
    layer = PatchConvMoE(ConvModule(4, 5, 3, padding=1,
                                    norm_cfg=dict(type='BN')),
                         num_experts=4 * batch, top_k=1, grid=(3, 3)).train()
    _spread(layer, 4 * batch)
    x = torch.randn(batch, 4, 2, 2, requires_grad=True)
    out = layer(x)
    counts = torch.bincount(layer.last_routing.experts.flatten())
    assert counts.tolist() == [1] * 4 * batch
    out.square().mean().backward()
    assert torch.isfinite(x.grad).all()
    for expert in layer.experts:
        assert expert.conv.weight.grad.abs().sum() > 0
