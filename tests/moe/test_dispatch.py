"""Top-k routing and sparse dispatch: weights, patch counts, gradients."""
import dataclasses

import pytest
import torch
from mmcv.cnn import ConvModule
from torch import nn

from moe_seg_plugin.moe import PatchConvMoE, RoutingRecord, TopK, top_k_route
from moe_seg_plugin.moe.patches import Placement
from moe_seg_plugin.moe.reference import spread_bias


def _moe(**kwargs) -> PatchConvMoE:
    conv = ConvModule(6, 8, 3, padding=1, norm_cfg=dict(type='BN'))
    kwargs.setdefault('num_experts', 6)
    kwargs.setdefault('top_k', 2)
    return PatchConvMoE(conv, **kwargs)


def test_weights_are_renormalised_chosen_probabilities():
    logits = torch.randn(50, 6)
    record = top_k_route(logits, 3)
    torch.testing.assert_close(record.weights.sum(1), torch.ones(50))
    chosen = record.probs.gather(1, record.experts)
    torch.testing.assert_close(record.weights,
                               chosen / chosen.sum(1, keepdim=True))
    # The chosen experts are the highest-probability ones, best first.
    assert torch.equal(record.experts, logits.topk(3, dim=1).indices)


def test_noise_only_in_training():
    moe = _moe(noisy_gating=True, noise_std=5.0)
    x = torch.randn(2, 6, 24, 24)
    moe.train()
    moe(x)
    assert moe.last_routing.noisy_logits is not None
    noisy_choice = moe.last_routing.experts
    assert not torch.equal(noisy_choice,
                           moe.last_routing.logits.topk(2, 1).indices)
    moe.eval()
    moe(x)
    record = moe.last_routing
    assert record.noisy_logits is None
    assert torch.equal(record.experts, record.logits.topk(2, 1).indices)


@pytest.mark.parametrize('top_k,shared,spread', [(1, 0, True), (2, 0, True),
                                                 (3, 2, True), (2, 0, False)])
def test_each_expert_runs_once_on_its_patches_only(top_k, shared, spread,
                                                    monkeypatch):
    from moe_seg_plugin.moe import dispatch
    calls = []
    run = dispatch.run_expert

    def recording(expert, steps, windows, layout, patches):
        calls.append((expert, tuple(windows.shape)))
        return run(expert, steps, windows, layout, patches)

    monkeypatch.setattr(dispatch, 'run_expert', recording)
    moe = PatchConvMoE(nn.Conv2d(4, 5, 3, padding=1), num_experts=5,
                       top_k=top_k, grid=(3, 4), num_shared_experts=shared,
                       gate=dict(type='ConvGAPGate'))
    shared_calls = []
    for expert in moe.shared_experts:
        expert.register_forward_hook(
            lambda m, args, out: shared_calls.append(tuple(args[0].shape)))
    patches = 3 * 3 * 4
    if spread:
        bias = spread_bias(patches, 5, top_k)
        moe.gate.register_forward_hook(lambda m, args, out: out + bias)
    x = torch.randn(3, 4, 30, 41)
    out = moe(x)
    assert out.shape == (3, 5, 30, 41)
    record = moe.last_routing
    assert record.grid == (3, 3, 4)
    assert record.experts.shape == (patches, top_k)
    per_expert = torch.bincount(record.experts.flatten(), minlength=5)
    # 10x11 patches, a 3x3 kernel: windows of 12x13 (the patch plus the
    # one-pixel halo), one call per chosen expert, in expert order.
    assert calls == [(moe.experts[e], (count, 4, 12, 13))
                     for e, count in enumerate(per_expert.tolist()) if count]
    if spread:
        assert 0 < per_expert.max() < patches
    # Shared experts see every patch: the whole map.
    assert shared_calls == [(3, 4, 30, 41)] * shared


def test_a_conv_with_its_own_forward_is_refused():
    class Standardised(nn.Conv2d):
        def forward(self, x):
            return super().forward(x) * 2

    with pytest.raises(ValueError, match='Standardised computes its '
                       'convolution in its own forward'):
        PatchConvMoE(Standardised(4, 5, 3, padding=1), num_experts=2)


def test_gradients_reach_gate_and_only_chosen_experts():
    moe = _moe(num_experts=8, top_k=2, grid=(1, 2))
    moe.train()
    x = torch.randn(1, 6, 16, 16)
    moe(x).square().mean().backward()
    chosen = set(moe.last_routing.experts.flatten().tolist())
    assert len(chosen) <= 4 < 8
    for index, expert in enumerate(moe.experts):
        grads = [p.grad for p in expert.parameters()]
        if index in chosen:
            assert all(g is not None and g.abs().sum() > 0 for g in grads)
        else:
            assert all(g is None for g in grads)
    gate_grads = [p.grad for p in moe.gate.parameters()]
    assert all(g is not None for g in gate_grads)
    assert sum(g.abs().sum() for g in gate_grads) > 0


def test_balance_loss_gradient_reaches_gate():
    moe = _moe(balance_loss=[dict(type='MoESwitchLoss'),
                             dict(type='MoEZLoss', loss_weight=0.1)])
    moe(torch.randn(2, 6, 20, 20))
    losses = moe.balance_loss()
    assert set(losses) == {'loss_moe_switch', 'loss_moe_z'}
    sum(losses.values()).backward()
    assert moe.gate.convs[0].weight.grad.abs().sum() > 0


def test_routing_record_describes_the_grid():
    moe = _moe(grid=(2, 3))
    moe.eval()
    moe(torch.randn(2, 6, 11, 20))
    record = moe.last_routing
    assert record.grid == (2, 2, 3)
    assert record.row_starts == (0, 6) and record.row_sizes == (6, 5)
    assert record.col_starts == (0, 7, 14) and record.col_sizes == (7, 7, 6)
    assert record.out_size == (11, 20)
    assert record.logits.shape == record.probs.shape == (12, 6)


def test_routing_record_is_built_once_complete():
    """The record's fields are the choice's, the placement's and ``kept``,
    each once; the record is frozen and each forward pass leaves a new
    one."""
    names = [f.name for f in dataclasses.fields(RoutingRecord)]
    parts = ([f.name for f in dataclasses.fields(TopK)] +
             [f.name for f in dataclasses.fields(Placement)] + ['kept'])
    assert sorted(parts) == sorted(names)
    moe = _moe(grid=(2, 2), capacity_factor=1.0)
    x = torch.randn(1, 6, 8, 8)
    moe(x)
    first = moe.last_routing
    assert first.kept is not None and first.grid == (1, 2, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.kept = None
    moe(x)
    assert moe.last_routing is not first


def test_moves_with_the_module_dtype():
    moe = _moe().double().eval()
    out = moe(torch.randn(1, 6, 13, 14, dtype=torch.float64))
    assert out.dtype == torch.float64


def test_traces_for_flop_counting():
    """MMEngine's FlopAnalyzer (a jit trace, sizes as tensors) runs the
    sparse dispatch and counts each chosen expert on its windows."""
    from mmengine.analysis import FlopAnalyzer
    conv = nn.Conv2d(4, 6, 3, padding=1)
    moe = PatchConvMoE(conv, num_experts=4, top_k=2).eval()
    bias = spread_bias(9, 4, 2)
    moe.gate.register_forward_hook(lambda m, args, out: out + bias)
    layout = moe.layout
    moe.layout = lambda h, w: layout(int(h), int(w))
    x = torch.randn(1, 4, 24, 30)
    analyzer = FlopAnalyzer(moe, (x, ))
    analyzer.unsupported_ops_warnings(False)
    # Patches of 8x10 pixels, two experts per patch (18 windows of 10x12
    # with the halo, run without padding: 8x10 outputs each), plus a small
    # gate.
    patch = FlopAnalyzer(conv, (torch.randn(1, 4, 8, 10), )).total()
    assert 18 * patch < analyzer.total() < 1.15 * 18 * patch
