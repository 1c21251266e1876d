"""The ``weighting`` setting: how the chosen experts' outputs are weighted,
and whether the task loss reaches the gate at top-1."""
import pytest
import torch
from torch import nn

from moe_seg_plugin.moe import PatchConvMoE
from moe_seg_plugin.moe.reference import naive_forward
from moe_seg_plugin.moe.routing import mixing_weights

#: Every test runs with both dispatches (tests/moe/conftest.py).
pytestmark = pytest.mark.usefixtures('dispatch')


def _layer(weighting: str, top_k: int = 1) -> PatchConvMoE:
    torch.manual_seed(0)
    return PatchConvMoE(nn.Conv2d(3, 4, 3, padding=1), num_experts=4,
                        top_k=top_k, grid=(2, 2), weighting=weighting,
                        gate=dict(type='GAPLinearGate'))


def _gate_grad(layer: PatchConvMoE) -> torch.Tensor:
    """Gradient of a task loss (no balancing loss) on the gate."""
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    layer(x).square().mean().backward()
    return torch.cat([p.grad.flatten() for p in layer.gate.parameters()])


def test_top1_renormalized_gives_the_gate_no_task_gradient():
    layer = _layer('renormalized')
    assert not _gate_grad(layer).any()
    assert torch.equal(layer.last_routing.weights,
                       torch.ones_like(layer.last_routing.weights))


@pytest.mark.parametrize('weighting', ['gate_prob', 'straight_through'])
def test_top1_gate_learns_from_the_task_loss(weighting):
    layer = _layer(weighting)
    grad = _gate_grad(layer)
    assert grad.abs().sum() > 1e-6


def test_gate_prob_weights_are_the_softmax_probabilities():
    layer = _layer('gate_prob', top_k=2)
    layer(torch.randn(1, 3, 8, 8))
    record = layer.last_routing
    expected = record.probs.gather(1, record.experts)
    torch.testing.assert_close(record.weights, expected)
    assert (record.weights.sum(dim=1) < 1).all()


def test_straight_through_is_renormalized_forward_gate_prob_backward():
    torch.manual_seed(0)
    logits = torch.randn(5, 4, requires_grad=True)
    probs = logits.softmax(dim=1)
    chosen, experts = logits.topk(2, dim=1)
    st = mixing_weights(probs, chosen, experts, 'straight_through')
    renorm = mixing_weights(probs, chosen, experts, 'renormalized')
    torch.testing.assert_close(st, renorm)
    upstream = torch.randn(5, 2)
    grad_st, = torch.autograd.grad((st * upstream).sum(), logits,
                                   retain_graph=True)
    grad_gp, = torch.autograd.grad(
        (mixing_weights(probs, chosen, experts, 'gate_prob') *
         upstream).sum(), logits)
    torch.testing.assert_close(grad_st, grad_gp)


@pytest.mark.parametrize('weighting',
                         ['renormalized', 'gate_prob', 'straight_through'])
def test_each_weighting_equals_the_naive_reference(weighting):
    layer = _layer(weighting, top_k=2).eval()
    x = torch.randn(2, 3, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), naive_forward(layer, x),
                                   atol=1e-5, rtol=1e-5)


def test_forced_expert_has_weight_one_whatever_the_weighting():
    layer = _layer('gate_prob', top_k=2).eval()
    layer.forced_expert = 1
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), layer.experts[1](x))
