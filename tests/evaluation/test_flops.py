"""FLOPs of PatchConvMoE layers and models (moe_seg_plugin.evaluation.flops).

Expected figures are written out from the layer geometry (one multiply-add
= 1 FLOP, eval BN with affine = 2 per element, as MMEngine counts), so the
traced dispatch is checked against numbers it did not produce itself.
"""
import pytest
import torch
from mmcv.cnn import ConvModule
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from torch import nn

from moe_seg_plugin.evaluation.flops import (analyze_model,
                                             analyze_moe_layer,
                                             compare_complexity, count_flops,
                                             input_hw)
from moe_seg_plugin.models.stock import stock_model_config
from moe_seg_plugin.moe import PatchConvMoE

C_IN, C_OUT = 8, 6
GAP_LINEAR = dict(type='GAPLinearGate')


def _conv_bn(kernel: int = 3) -> nn.Module:
    return ConvModule(C_IN, C_OUT, kernel, padding=kernel // 2,
                      norm_cfg=dict(type='BN'))


def _layer(module=None, **settings) -> PatchConvMoE:
    settings.setdefault('gate', GAP_LINEAR)
    return PatchConvMoE(module or _conv_bn(), **settings).eval()


# Input (2, 8, 17, 23) and a 3x3 'same' conv on a 3x3 grid: rows 6/6/5,
# cols 8/8/7: 18 patches of (padded) 6x8 outputs; an expert on windows
# computes those outputs only (tight windows, no halo outputs).
BATCH, HEIGHT, WIDTH = 2, 17, 23
PATCHES = 18
CONV_BN = C_OUT * C_IN * 9 + 2 * C_OUT  # per output pixel (eval BN: 2)
DENSE = BATCH * HEIGHT * WIDTH * CONV_BN
EXPERT_WINDOWS = PATCHES * 6 * 8 * CONV_BN


def _gate(num_experts: int) -> int:
    return PATCHES * C_IN * num_experts  # Linear(C, N) on each patch mean


def _spread_input(layer: PatchConvMoE, top_k: int) -> torch.Tensor:
    """An input that sends grid cell c to experts c % 4, (c + 1) % 4, ...:
    every expert gets some patches, none gets all."""
    with torch.no_grad():
        layer.gate.fc.weight.zero_()
        layer.gate.fc.bias.zero_()
        for expert in range(layer.num_experts):
            layer.gate.fc.weight[expert, expert] = 1.0
    x = torch.zeros(BATCH, C_IN, HEIGHT, WIDTH)
    rows, cols = (0, 6, 12, HEIGHT), (0, 8, 16, WIDTH)
    for cell in range(9):
        i, j = divmod(cell, 3)
        for rank in range(top_k):
            x[:, (cell + rank) % 4, rows[i]:rows[i + 1],
              cols[j]:cols[j + 1]] = top_k - rank
    return x


@pytest.mark.parametrize('num_experts', [1, 3, 5])
def test_top_k_n_costs_the_all_experts_figure(num_experts):
    layer = _layer(num_experts=num_experts, top_k=num_experts)
    info = analyze_moe_layer(layer, torch.randn(BATCH, C_IN, HEIGHT, WIDTH))
    assert info.window_shape == (PATCHES, C_IN, 8, 10)  # patch + 1 px halo
    assert info.dense == DENSE
    assert info.expert_windows == EXPERT_WINDOWS
    assert info.gate == _gate(num_experts)
    assert info.all_experts == (_gate(num_experts) +
                                num_experts * EXPERT_WINDOWS)
    assert info.actual == info.all_experts  # the traced dispatch


@pytest.mark.parametrize('top_k', [1, 2])
def test_experts_run_on_the_windows_of_their_patches(top_k):
    layer = _layer(num_experts=4, top_k=top_k)
    info = analyze_moe_layer(layer, _spread_input(layer, top_k))
    chosen = layer.last_routing.experts[:9].tolist()
    assert chosen == [[(c + r) % 4 for r in range(top_k)] for c in range(9)]
    # Each patch's window once per chosen expert: k x all windows.
    assert info.routed == top_k * EXPERT_WINDOWS
    assert info.actual == _gate(4) + top_k * EXPERT_WINDOWS
    assert info.actual < info.all_experts


def test_stagewise_experts_on_windows_with_halo():
    # Padded second conv: windows hold both convs' halo; each conv runs
    # without padding, so each computes only outputs the next one reads.
    module = nn.Sequential(nn.Conv2d(C_IN, C_IN, 3, padding=1), nn.ReLU(),
                           nn.Conv2d(C_IN, C_OUT, 3, padding=1))
    layer = _layer(module, num_experts=4, top_k=2)
    info = analyze_moe_layer(layer, _spread_input(layer, 2))
    # Windows: patch + 2 px each side (rows 6+4, cols 8+4); the first conv
    # gives the patch + 1 px (8x10), the second the patch (6x8).
    assert info.window_shape == (PATCHES, C_IN, 10, 12)
    first = PATCHES * 8 * 10 * C_IN * C_IN * 9
    second = PATCHES * 6 * 8 * C_IN * C_OUT * 9
    assert info.expert_windows == first + second
    assert info.routed == 2 * info.expert_windows


def test_an_expert_with_every_patch_runs_on_every_window():
    layer = _layer(num_experts=4, top_k=1)
    layer.forced_expert = 2
    info = analyze_moe_layer(layer, torch.randn(BATCH, C_IN, HEIGHT, WIDTH))
    assert info.actual == _gate(4) + EXPERT_WINDOWS


def test_shared_experts_run_on_every_patch():
    layer = _layer(num_experts=4, top_k=1, num_shared_experts=2)
    info = analyze_moe_layer(layer, _spread_input(layer, 1))
    assert info.shared == 2 * DENSE
    assert info.actual == _gate(4) + EXPERT_WINDOWS + 2 * DENSE
    assert info.all_experts == _gate(4) + 4 * EXPERT_WINDOWS + 2 * DENSE


@pytest.mark.parametrize('kernel', [1, 3])
def test_one_expert_one_patch_is_the_dense_conv_plus_gate(kernel):
    layer = _layer(nn.Conv2d(C_IN, C_OUT, kernel, padding=kernel // 2),
                   num_experts=1, top_k=1, grid=1)
    info = analyze_moe_layer(layer, torch.randn(BATCH, C_IN, HEIGHT, WIDTH))
    dense = BATCH * HEIGHT * WIDTH * C_IN * C_OUT * kernel**2
    assert info.dense == dense
    assert info.gate == BATCH * C_IN  # Linear(C, 1) on one patch per image
    assert info.actual == dense + info.gate


def test_low_rank_experts_count_the_shared_stem_on_the_whole_map():
    """expert_rank=r: the stem (C_in -> r, the conv's geometry) on the
    whole map, the 1x1 experts r -> C_out on the windows, and the merging
    of each patch's kernels (T x N weights times N kernels and biases)."""
    rank, experts = 2, 4
    layer = _layer(nn.Conv2d(C_IN, C_OUT, 3, padding=1),
                   num_experts=experts, top_k=1, expert_scope='conv',
                   expert_rank=rank)
    layer.forced_expert = 2
    info = analyze_moe_layer(layer, torch.randn(BATCH, C_IN, HEIGHT, WIDTH))
    assert info.stem == BATCH * HEIGHT * WIDTH * C_IN * rank * 9
    assert info.expert_windows == PATCHES * 6 * 8 * rank * C_OUT
    merging = PATCHES * experts * (C_OUT * rank + C_OUT)
    assert info.actual == (_gate(experts) + info.stem + info.expert_windows +
                           merging)


def test_counting_leaves_the_layer_as_it_was():
    layer = _layer(num_experts=3, top_k=2)
    x = torch.randn(BATCH, C_IN, HEIGHT, WIDTH)
    with torch.no_grad():
        before = layer(x)
    count_flops(layer, (x, ))
    assert 'layout' not in vars(layer)
    with torch.no_grad():
        assert torch.equal(layer(x), before)


HEAD = dict(type='ENetHead', in_channels=16, channels=16, num_classes=5,
            norm_cfg=dict(type='BN'), align_corners=False)
AUX = dict(type='FCNHead', in_channels=16, channels=8, num_convs=1,
           num_classes=5, norm_cfg=dict(type='BN'))


def _segmentor_cfg(**moe) -> ConfigDict:
    return ConfigDict(
        type='EncoderDecoder', backbone=dict(type='ENet'),
        decode_head=dict(HEAD, type='PatchMoEHead', head_type='ENetHead',
                         moe=moe),
        auxiliary_head=AUX, train_cfg=dict(), test_cfg=dict(mode='whole'))


def test_model_figures_against_the_stock_model():
    init_default_scope('mmseg')
    cfg = _segmentor_cfg(num_experts=4, top_k=2, grid=(3, 3))
    moe_model = MODELS.build(cfg)
    stock_model = MODELS.build(stock_model_config(cfg))
    moe = analyze_model(moe_model, (48, 64))
    stock = analyze_model(stock_model, (48, 64))
    assert stock.layers == {} and stock.all_experts_flops == stock.flops
    assert not any('forward' in vars(m) or 'layout' in vars(m)
                   for m in moe_model.modules())  # tracing patches undone
    (path, layer), = moe.layers.items()
    assert path == 'decode_head.bottleneck.ext'
    assert layer.module == 'Sequential' and layer.grid == (3, 3)
    # Only the replaced layer differs; its dense figure is the stock one.
    _, stock_analyzer = count_flops(stock_model.eval(),
                                    (torch.randn(1, 3, 48, 64), ))
    assert layer.dense == stock_analyzer.by_module()[path]
    assert moe.flops - stock.flops == layer.actual - layer.dense
    assert moe.all_experts_flops - moe.flops == (layer.all_experts -
                                                 layer.actual)
    assert layer.actual == layer.gate + layer.routed > layer.gate > 0
    assert layer.routed <= 2 * max(layer.dense, layer.expert_windows)
    gate_params = sum(p.numel() for p in
                      moe_model.decode_head.bottleneck.ext.gate.parameters())
    assert moe.params - stock.params == 3 * layer.dense_params + gate_params
    aux = sum(p.numel() for p in stock_model.auxiliary_head.parameters())
    assert stock.params_total - stock.params == aux > 0
    increase = compare_complexity(moe, stock)
    assert increase['params_pct'] == pytest.approx(
        100 * (moe.params - stock.params) / stock.params)
    assert increase['flops_pct'] < increase['all_experts_flops_pct']


@pytest.mark.parametrize('values,expected', [([64], (64, 64)),
                                             ([64, 128], (64, 128))])
def test_shape_argument(values, expected):
    assert input_hw(values) == expected


@pytest.mark.parametrize('values', [[], [1, 2, 3], [0, 5]])
def test_bad_shape_argument(values):
    with pytest.raises(ValueError, match='--shape'):
        input_hw(values)
