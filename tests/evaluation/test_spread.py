"""spread_routing: inside the block every patch goes round-robin to
experts (t * k + j) % N (following k when it changes), the gates are as
before after the block, and every MoE layer of the given modules is
found, of this core or of a copy of it."""
import torch
from torch import nn

from moe_seg_plugin.evaluation.spread import (find_moe_layers, is_moe_layer,
                                              spread_routing)
from moe_seg_plugin.moe import PatchConvMoE


def _layer(experts: int = 4, top_k: int = 2) -> PatchConvMoE:
    return PatchConvMoE(nn.Conv2d(4, 4, 3, padding=1), num_experts=experts,
                        top_k=top_k, grid=(3, 3)).eval()


def _chosen(layer: PatchConvMoE, x: torch.Tensor) -> list:
    with torch.no_grad():
        layer(x)
    return [set(row) for row in layer.last_routing.experts.tolist()]


def _round_robin(patches: int, experts: int, top_k: int) -> list:
    return [{(t * top_k + j) % experts for j in range(top_k)}
            for t in range(patches)]


def test_patches_go_round_robin_inside_the_block_only():
    layer, x = _layer(), torch.randn(2, 4, 12, 12)
    before = _chosen(layer, x)
    with spread_routing(layer) as found:
        spread = _chosen(layer, x)
    assert found == [layer]
    assert spread == _round_robin(18, 4, 2)  # 2 images x 3x3 patches
    assert not layer.gate._forward_hooks
    assert _chosen(layer, x) == before


def test_the_spread_follows_top_k_changed_in_place():
    layer, x = _layer(experts=5), torch.randn(1, 4, 12, 12)
    with spread_routing(layer):
        layer.top_k = 1
        assert _chosen(layer, x) == _round_robin(9, 5, 1)
        layer.top_k = 3
        assert _chosen(layer, x) == _round_robin(9, 5, 3)


def _gate_output(layer: PatchConvMoE, x: torch.Tensor) -> torch.Tensor:
    """The logits the layer routes by (a hook after any earlier one)."""
    seen = []
    handle = layer.gate.register_forward_hook(
        lambda module, args, out: seen.append(out))
    with torch.no_grad():
        layer(x)
    handle.remove()
    return seen[0]


def test_gate_logits_get_the_offset_and_get_it_back():
    layer, x = _layer(), torch.randn(1, 4, 12, 12)
    plain = _gate_output(layer, x)
    with spread_routing(layer, scale=7.0):
        spread = _gate_output(layer, x)
    want = torch.zeros(9, 4)
    for patch in range(9):  # k=2: experts 2t % 4 and (2t + 1) % 4
        want[patch, [2 * patch % 4, (2 * patch + 1) % 4]] = 7.0
    assert torch.allclose(spread - plain, want, atol=1e-5)
    assert torch.equal(_gate_output(layer, x), plain)


def test_every_layer_of_several_modules_is_found_once():
    first, second = _layer(), _layer()
    model = nn.Sequential(first, nn.ReLU(), second)
    assert find_moe_layers(model, second) == [first, second]
    assert not is_moe_layer(nn.Conv2d(1, 1, 1))

    class Copy(nn.Module):  # another checkout's layer: not this class
        def __init__(self):
            super().__init__()
            self.gate, self.top_k, self.num_experts = nn.Identity(), 1, 2

    assert is_moe_layer(Copy()) and not isinstance(Copy(), PatchConvMoE)
