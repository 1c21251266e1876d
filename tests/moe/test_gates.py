"""Gates: the eval-mode shortcut of DoubleConvGAPGate equals its per-pixel
computation."""
import pytest
import torch

from moe_seg_plugin.moe.gates import DoubleConvGAPGate
from moe_seg_plugin.moe.layer import PatchConvMoE


def _gate(**kwargs) -> DoubleConvGAPGate:
    torch.manual_seed(0)
    gate = DoubleConvGAPGate(6, 5, hidden_channels=4, **kwargs)
    norm = gate.convs[1]
    norm.running_mean.uniform_(-1, 1)
    norm.running_var.uniform_(0.5, 2)
    norm.weight.data.uniform_(0.5, 1.5)
    norm.bias.data.uniform_(-1, 1)
    return gate


def _where():
    layout = PatchConvMoE(torch.nn.Conv2d(6, 6, 3, padding=1)).layout(17, 23)
    return layout


def test_eval_pools_first_with_the_same_logits():
    gate, layout = _gate().eval(), _where()
    x = torch.randn(2, 6, 17, 23)
    assert gate.affine_in_eval()
    with torch.no_grad():
        per_pixel = layout.cell_means(gate.convs(x))
        assert torch.allclose(gate(x, layout.cell_means), per_pixel,
                              atol=1e-5)


def test_training_normalises_per_pixel():
    gate, layout = _gate(), _where()
    x = torch.randn(2, 6, 17, 23)
    expected = layout.cell_means(gate.convs(x))
    assert torch.allclose(gate(x, layout.cell_means), expected, atol=1e-5)


@pytest.mark.parametrize('kwargs', [dict(with_act=True), dict(kernel_size=3)])
def test_no_shortcut_when_not_affine(kwargs):
    gate, layout = _gate(**kwargs).eval(), _where()
    assert not gate.affine_in_eval()
    x = torch.randn(1, 6, 17, 23)
    with torch.no_grad():
        expected = layout.cell_means(gate.convs(x))
        assert torch.allclose(gate(x, layout.cell_means), expected,
                              atol=1e-5)


def test_no_shortcut_without_running_statistics():
    gate = DoubleConvGAPGate(6, 5)
    gate.convs[1] = torch.nn.BatchNorm2d(8, track_running_stats=False)
    assert not gate.eval().affine_in_eval()
