"""Capacity mode: a fixed number of windows per expert, choices over it
dropped by a stated policy, no data-dependent shapes."""
import copy

import pytest
import torch
from torch import nn

from moe_seg_plugin.moe import PatchConvMoE
from moe_seg_plugin.moe.dispatch import expert_capacity, group_by_expert
from moe_seg_plugin.moe.reference import dense_weights, spread_bias
from moe_seg_plugin.moe.statistics import RoutingCounts, routing_health


def _module() -> nn.Module:
    return nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6),
                         nn.ReLU())


def _layer(module=None, **kwargs) -> PatchConvMoE:
    torch.manual_seed(0)
    kwargs.setdefault('num_experts', 4)
    return PatchConvMoE(module or _module(), top_k=2, grid=(2, 3), **kwargs)


@pytest.mark.parametrize('factor, patches, want', [
    (1.0, 18, 9),     # 18 * 2 / 4
    (1.25, 18, 12),   # ceil(11.25)
    (0.01, 18, 1),    # at least one window
    (10.0, 18, 18),   # at most every patch
])
def test_capacity_is_factor_times_fair_share(factor, patches, want):
    assert expert_capacity(factor, patches, 2, 4) == want


def test_first_choices_are_kept_before_second_choices():
    """Capacity 3, two experts: expert 0 gets patches 0-2 as first choice
    and patch 3 as second choice (its 4th, dropped); expert 1 gets patch 3
    first, then patches 0-2 second, of which patch 2's is its 4th."""
    experts = torch.tensor([[0, 1], [0, 1], [0, 1], [1, 0]])
    weights = torch.full((4, 2), 0.5)
    groups = group_by_expert(experts, weights, 2, capacity=3)
    assert groups.counts == [3, 3]
    assert groups.kept.tolist() == [[True, True], [True, True],
                                    [True, False], [True, False]]
    # Expert 0's windows: patches 0, 1, 2; expert 1's: 3, 0, 1.
    assert groups.patches.tolist() == [0, 1, 2, 3, 0, 1]
    assert groups.weights.tolist() == [[0.5, 0.5], [0.5, 0.5], [0.5, 0.0],
                                       [0.5, 0.0]]
    kept_rows = groups.slots[groups.kept].tolist()
    assert kept_rows == [0, 4, 1, 5, 2, 3]


def test_spare_capacity_reads_real_patches_and_is_not_used():
    experts = torch.tensor([[0, 1], [0, 1]])
    groups = group_by_expert(experts, torch.ones(2, 2), 3, capacity=2)
    assert groups.kept.all()
    # Expert 2 got nothing: its two windows are patches 0 and 1 in turn,
    # and no slot reads rows 4-5.
    assert groups.patches.tolist() == [0, 1, 0, 1, 0, 1]
    assert not set(groups.slots.flatten().tolist()) & {4, 5}


def test_ample_capacity_equals_the_default_mode():
    """With capacity T (factor N / k) nothing is dropped: output and
    gradients equal the default dispatch's. (Experts without batch norm:
    in training, spare capacity's windows count in a norm's statistics.)"""
    default = _layer(nn.Sequential(nn.Conv2d(4, 6, 3, padding=1),
                                   nn.ReLU()),
                     balance_loss=dict(type='MoESwitchLoss'))
    capped = copy.deepcopy(default)
    capped.capacity_factor = 2.0
    x = torch.randn(3, 4, 11, 14)
    outs = []
    for layer in (default, capped):
        xg = x.clone().requires_grad_()
        out = layer(xg)
        (out.square().mean() + sum(layer.balance_loss().values())).backward()
        outs.append((out, xg.grad, layer.gate.convs[0].weight.grad,
                     layer.experts[1][0].weight.grad))
    default.eval(), capped.eval()
    with torch.no_grad():
        torch.testing.assert_close(capped(x), default(x))
    assert capped.last_routing.kept.all()
    for got, want in zip(outs[1], outs[0]):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_dropped_choices_add_nothing():
    """Every patch to experts 0 and 1 with capacity 1: the first patch
    keeps both choices, every other patch loses both; its output is 0 (no
    shared expert) and the kept ones are the naive mixture."""
    layer = _layer(capacity_factor=0.25).eval()
    bias = torch.zeros(6, 4)
    bias[:, :2] = 100.0
    layer.gate.register_forward_hook(lambda m, a, out: out + bias)
    x = torch.randn(1, 4, 10, 12)
    with torch.no_grad():
        out = layer(x)
    kept = layer.last_routing.kept
    assert kept.tolist() == [[True, True]] + [[False, False]] * 5
    record = layer.last_routing
    layout = layer.layout(10, 12)
    r, c = layout.rows, layout.cols
    # Patch 0 is the top-left cell; the rest of the map is zero.
    first = out[0, :, :r.sizes[0], :c.sizes[0]]
    rest = out.clone()
    rest[0, :, :r.sizes[0], :c.sizes[0]] = 0
    assert torch.count_nonzero(rest) == 0
    weights = dense_weights(record, 4)[0]
    with torch.no_grad():
        expected = sum(weights[e] * layer.experts[e](x)
                       for e in range(2))[0, :, :r.sizes[0], :c.sizes[0]]
    torch.testing.assert_close(first, expected, atol=1e-5, rtol=1e-5)


def test_dropped_share_is_a_routing_statistic():
    layer = _layer(capacity_factor=0.5)
    bias = spread_bias(12, 4, 2)
    bias[:, 0] += 200.0  # every patch wants expert 0 first
    layer.gate.register_forward_hook(lambda m, a, out: out + bias)
    layer(torch.randn(2, 4, 10, 12))
    record = layer.last_routing
    # Capacity ceil(0.5 * 12 * 2 / 4) = 3: expert 0 keeps 3 of its 12.
    dropped = (~record.kept).sum().item()
    assert dropped >= 9
    health = routing_health(record)
    assert health['dropped_share'].item() == pytest.approx(dropped / 24)
    counts = RoutingCounts(4)
    counts.add(record)
    counts.add(record, image_index=1)
    per_image = (~record.kept[6:]).sum().item()
    assert counts.summary()['dropped_share'] == pytest.approx(
        (dropped + per_image) / 36)


def test_default_mode_drops_nothing_and_says_so():
    layer = _layer()
    layer(torch.randn(1, 4, 8, 8))
    assert layer.last_routing.kept is None
    assert 'dropped_share' not in routing_health(layer.last_routing)
    counts = RoutingCounts(4)
    counts.add(layer.last_routing)
    assert counts.summary()['dropped_share'] == 0.0


def test_forced_expert_is_never_dropped():
    layer = _layer(capacity_factor=0.5).eval()
    layer.forced_expert = 2
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        out = layer(x)
        torch.testing.assert_close(out, layer.experts[2](x), atol=1e-5,
                                   rtol=1e-5)


def test_compiles_without_graph_breaks():
    """No value of the routing reaches the host: the whole forward and
    backward trace as one graph (fullgraph raises on any break)."""
    layer = _layer(capacity_factor=1.25,
                   balance_loss=dict(type='MoESwitchLoss'))
    x = torch.randn(2, 4, 12, 12)
    compiled = torch.compile(layer, backend='eager', fullgraph=True)
    out = compiled(x)
    (out.mean() + sum(layer.balance_loss().values())).backward()
    torch.testing.assert_close(out, layer(x), atol=1e-5, rtol=1e-5)
    torch._dynamo.reset()


def test_default_mode_breaks_the_graph_once_to_read_counts():
    layer = _layer()
    explained = torch._dynamo.explain(layer)(torch.randn(2, 4, 12, 12))
    torch._dynamo.reset()
    places = {(frame.filename.rsplit('/', 1)[-1], frame.name)
              for reason in explained.break_reasons
              for frame in reason.user_stack[-1:]}
    assert places == {('dispatch.py', 'group_by_expert')}


@pytest.mark.parametrize('factor', [0, -1.0, '1.5', float('nan')])
def test_bad_capacity_factor_is_refused(factor):
    with pytest.raises(ValueError, match='capacity_factor must be'):
        _layer(capacity_factor=factor)
