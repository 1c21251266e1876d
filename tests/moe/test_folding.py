"""Inference's folded last stage (moe/folding.py): the weighted expert
output, its batch norm and weight folded into the convolution."""
import pytest
import torch
from mmcv.cnn import ConvModule
from torch import nn

from moe_seg_plugin.moe import PatchConvMoE
from moe_seg_plugin.moe.experts import run_expert
from moe_seg_plugin.moe.folding import fold_plan, run_folded
from moe_seg_plugin.moe.reference import randomise_batch_norms


MODULES = {
    'conv with bias': (lambda: nn.Conv2d(4, 6, 3, padding=1), False),
    'conv, BN, ReLU': (lambda: ConvModule(
        4, 6, 3, padding=2, dilation=2, norm_cfg=dict(type='BN')), True),
    'conv with bias, BN': (lambda: ConvModule(
        4, 6, 1, bias=True, norm_cfg=dict(type='BN'), act_cfg=None), False),
    'conv, ReLU': (lambda: ConvModule(4, 6, 3, padding=1), True),
    # ENet's bottleneck: PReLU stages first, dropout (identity in eval) last.
    'sequential': (lambda: nn.Sequential(
        ConvModule(4, 2, 1, norm_cfg=dict(type='BN'),
                   act_cfg=dict(type='PReLU')),
        ConvModule(2, 2, 3, padding=1, norm_cfg=dict(type='BN'),
                   act_cfg=dict(type='PReLU')),
        ConvModule(2, 6, 1, norm_cfg=dict(type='BN'), act_cfg=None),
        nn.Dropout2d(0.1)), False),
}


@pytest.mark.parametrize('name', list(MODULES))
def test_folded_stage_is_the_weighted_output_before_its_relu(name):
    make, relu = MODULES[name]
    torch.manual_seed(0)
    layer = PatchConvMoE(randomise_batch_norms(make()), num_experts=2,
                         top_k=1, grid=(2, 3)).eval()
    randomise_batch_norms(layer)
    layout = layer.layout(30, 45)  # 15x15 patches: weights smaller
    expert, steps = layer.experts[1], layer.expert_steps
    plan = fold_plan(expert, steps, layout)
    assert plan is not None and plan.relu == relu
    windows = torch.randn(3, 4, layout.rows.window, layout.cols.window)
    patches = torch.tensor([0, 4, 5])
    weight = torch.tensor(0.3)
    with torch.no_grad():
        want = run_expert(expert, steps, windows, layout, patches) * weight
        got = run_folded(expert, steps, plan, windows, layout, patches,
                         weight)
    torch.testing.assert_close(got.relu() if relu else got, want, atol=1e-5,
                               rtol=1e-5)


@pytest.mark.parametrize('module,why', [
    (ConvModule(4, 6, 3, padding=1, norm_cfg=dict(type='BN'),
                act_cfg=dict(type='PReLU')), 'not a ReLU'),
    (ConvModule(4, 6, 3, padding=1, norm_cfg=dict(type='BN'),
                order=('conv', 'act', 'norm')), 'norm after the ReLU'),
    (nn.Sequential(nn.Conv2d(4, 6, 1), nn.ReLU()), 'a ReLU stage'),
    (ConvModule(512, 6, 3, padding=1), 'weight larger than the outputs'),
])
def test_what_is_not_folded(module, why):
    layer = PatchConvMoE(module, num_experts=2, top_k=1,
                         grid=(2, 3)).eval()
    layout = layer.layout(30, 45)
    assert fold_plan(layer.experts[0], layer.expert_steps, layout) is None, \
        why


def test_batch_norm_in_training_mode_is_not_folded():
    layer = PatchConvMoE(ConvModule(4, 6, 3, padding=1,
                                    norm_cfg=dict(type='BN')),
                         num_experts=2, top_k=1, grid=(2, 3))
    assert fold_plan(layer.experts[0], layer.expert_steps,
                     layer.layout(30, 45)) is None
