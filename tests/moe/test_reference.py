"""Sparse dispatch against the naive reference (every expert on every
patch, masked): same outputs, same gradients."""
import pytest
import torch
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from torch import nn

from moe_seg_plugin.moe import PatchConvMoE
from moe_seg_plugin.moe.reference import (dense_weights, naive_forward,
                                          randomise_batch_norms, spread_bias)
from moe_seg_plugin.moe.routing import top_k_route

#: Every test runs with both dispatches (tests/moe/conftest.py).
pytestmark = pytest.mark.usefixtures('dispatch')


def _spread(layer: PatchConvMoE, patches: int) -> None:
    """Make the gate send patches to all experts round-robin."""
    bias = spread_bias(patches, layer.num_experts, layer.top_k, scale=20.0)
    layer.gate.register_forward_hook(lambda m, args, out: out + bias)


MODULES = {
    'conv': lambda: nn.Conv2d(5, 6, 3, padding=2, dilation=2),
    'strided': lambda: ConvModule(5, 6, 3, stride=2, padding=1,
                                  norm_cfg=dict(type='BN')),
    'separable': lambda: DepthwiseSeparableConvModule(
        5, 6, 3, padding=1, norm_cfg=dict(type='BN')),
    # Stage-wise: the inner 3x3 conv reads zero padding at the map border.
    'sequential': lambda: nn.Sequential(
        ConvModule(5, 3, 1, norm_cfg=dict(type='BN'),
                   act_cfg=dict(type='PReLU')),
        ConvModule(3, 3, 3, padding=1, norm_cfg=dict(type='BN')),
        ConvModule(3, 6, 1, norm_cfg=dict(type='BN'), act_cfg=None)),
}


@pytest.mark.parametrize('module', list(MODULES))
@pytest.mark.parametrize('num_experts,top_k,shared', [(1, 1, 0), (2, 2, 0),
                                                     (5, 1, 0), (5, 2, 1),
                                                     (8, 3, 0)])
def test_sparse_output_equals_naive(module, num_experts, top_k, shared):
    torch.manual_seed(0)
    layer = PatchConvMoE(
        randomise_batch_norms(MODULES[module]()), num_experts=num_experts,
        top_k=top_k, grid=(3, 4), num_shared_experts=shared).eval()
    randomise_batch_norms(layer)
    x = torch.randn(2, 5, 23, 30)
    _spread(layer, 2 * 12)
    with torch.no_grad():
        got = layer(x)
        expected = naive_forward(layer, x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # Every expert had work.
    used = layer.last_routing.experts.unique().numel()
    assert used == num_experts


def test_gate_routing_without_spread_equals_naive():
    """The gate's own (typically lopsided) routing: some experts take
    every patch and run on the whole map."""
    torch.manual_seed(1)
    layer = PatchConvMoE(ConvModule(4, 4, 3, padding=1),
                         num_experts=4, top_k=2, patch_size=(5, 7)).eval()
    x = torch.randn(3, 4, 17, 20)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), naive_forward(layer, x),
                                   atol=1e-5, rtol=1e-5)


def _grads(layer: PatchConvMoE, x: torch.Tensor, out: torch.Tensor) -> dict:
    target = torch.randn_like(out, generator=torch.Generator().manual_seed(3))
    layer.zero_grad()
    x.grad = None
    (out * target).sum().backward()
    grads = {
        name: p.grad.clone()
        for name, p in layer.named_parameters() if p.grad is not None
    }
    grads['input'] = x.grad.clone()
    return grads


@pytest.mark.parametrize('module,train,num_experts', [
    ('conv', True, 6), ('sequential', False, 6), ('strided', False, 6),
    ('conv', True, 2), ('strided', False, 2)
])
def test_gradients_equal_naive(module, train, num_experts):
    """With 2 experts and k=2 both take every patch (whole-map calls)."""
    torch.manual_seed(2)
    layer = PatchConvMoE(randomise_batch_norms(MODULES[module]()),
                         num_experts=num_experts, top_k=2, grid=(3, 3),
                         num_shared_experts=1)
    layer.train(train)
    randomise_batch_norms(layer)
    x = torch.randn(2, 5, 19, 26, requires_grad=True)
    _spread(layer, 18)
    sparse = _grads(layer, x, layer(x))
    naive = _grads(layer, x, naive_forward(layer, x))
    # Unchosen experts get no gradient from the sparse layer and exact zeros
    # from the naive one; everything else must agree.
    for name, grad in naive.items():
        if name not in sparse:
            assert name.startswith('experts.') and not grad.any(), name
            continue
        torch.testing.assert_close(sparse[name], grad, atol=1e-4,
                                   rtol=1e-4, msg=name)
    assert sparse['gate.convs.0.weight'].abs().sum() > 0
    assert sparse['input'].abs().sum() > 0


def test_dense_weights_put_chosen_weights_in_place():
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])
    record = top_k_route(logits, 2)
    weights = dense_weights(record, 3)
    assert weights[0, 0] == 0 and weights[1, 1] == 0
    torch.testing.assert_close(weights.sum(1), torch.ones(2))
    assert weights[0, 1] > weights[0, 2] and weights[1, 0] > weights[1, 2]


def test_spread_bias_gives_each_patch_k_distinct_experts():
    bias = spread_bias(5, 4, 2, scale=1.0)
    assert bias.sum(1).tolist() == [2.0] * 5
    assert bias.argmax(1).tolist() == [0, 2, 0, 2, 0]
    assert (bias.sum(0) > 0).all()


@pytest.mark.parametrize('module', ['sequential', 'conv'])
def test_one_patch_per_expert_equals_naive(module):
    """Each expert runs on a single window."""
    torch.manual_seed(4)
    layer = randomise_batch_norms(PatchConvMoE(randomise_batch_norms(MODULES[module]()),
                                       num_experts=9, top_k=1)).eval()
    _spread(layer, 9)
    x = torch.randn(1, 5, 20, 23)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), naive_forward(layer, x),
                                   atol=1e-5, rtol=1e-5)
    assert layer.last_routing.experts.flatten().tolist() == list(range(9))


def test_a_swapped_stage_module_is_used():
    """The layer reads each expert's stages once, but reads them again when
    a submodule is replaced (as SyncBatchNorm conversion does)."""
    torch.manual_seed(2)
    module = nn.Sequential(
        nn.Conv2d(5, 3, 1), nn.BatchNorm2d(3), nn.Conv2d(3, 6, 3, padding=1))
    layer = PatchConvMoE(module, num_experts=4, top_k=2).eval()
    _spread(layer, 9)
    x = torch.randn(1, 5, 20, 23)
    with torch.no_grad():
        before = layer(x)
        for expert in layer.experts:
            expert[1] = randomise_batch_norms(nn.BatchNorm2d(3)).eval()
        after = layer(x)
        expected = naive_forward(layer, x)
    assert not torch.allclose(before, after, atol=1e-3)
    torch.testing.assert_close(after, expected, atol=1e-5, rtol=1e-5)
