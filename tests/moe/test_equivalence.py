"""The invariant of the design (docs/en/advanced_guides/design.md): one
expert with weight 1 is the dense layer."""
import copy

import pytest
import torch
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from torch import nn

from moe_seg_plugin.moe import PatchConvMoE
from moe_seg_plugin.moe.reference import randomise_batch_norms

#: Every test runs with both dispatches (tests/moe/conftest.py).
pytestmark = pytest.mark.usefixtures('dispatch')

SIZES = [(37, 53), (16, 16), (9, 31)]


def _single_expert(module: nn.Module, **kwargs) -> PatchConvMoE:
    kwargs.setdefault('grid', (3, 3))
    return PatchConvMoE(
        module, num_experts=1, top_k=1, expert_init='copy', init_noise=0.0,
        **kwargs).eval()


def _assert_same(moe: PatchConvMoE, dense: nn.Module, x: torch.Tensor):
    dense = dense.eval()
    with torch.no_grad():
        expected = dense(x)
        got = moe(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('kernel', [1, 3])
@pytest.mark.parametrize('dilation', [1, 2, 6])
@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('grid', [(1, 1), (3, 3), (4, 4)])
def test_conv2d_equals_dense(kernel, dilation, stride, grid):
    conv = nn.Conv2d(5, 7, kernel, stride=stride, dilation=dilation,
                     padding=dilation * (kernel // 2))
    moe = _single_expert(conv, grid=grid)
    for batch in (1, 3):
        for size in SIZES:
            _assert_same(moe, conv, torch.randn(batch, 5, *size))


@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('dilation', [1, 6])
def test_conv_module_bn_relu_equals_dense(stride, dilation):
    conv = randomise_batch_norms(
        ConvModule(6, 8, 3, stride=stride, dilation=dilation,
                   padding=dilation, norm_cfg=dict(type='BN'),
                   act_cfg=dict(type='ReLU')))
    moe = _single_expert(conv, grid=(3, 3))
    for batch in (1, 3):
        _assert_same(moe, conv, torch.randn(batch, 6, 37, 53))


@pytest.mark.parametrize('dilation', [1, 2, 6])
def test_depthwise_separable_equals_dense(dilation):
    conv = randomise_batch_norms(
        DepthwiseSeparableConvModule(
            6, 8, 3, dilation=dilation, padding=dilation,
            norm_cfg=dict(type='BN'), act_cfg=dict(type='ReLU')))
    moe = _single_expert(conv, grid=(4, 4))
    _assert_same(moe, conv, torch.randn(3, 6, 37, 53))


def test_sequential_with_inner_padding_equals_dense():
    """Two padded convs in a row: the second must see zeros, not the first
    conv's response to zeros, outside the image."""
    seq = randomise_batch_norms(
        nn.Sequential(
            ConvModule(4, 6, 3, padding=1, norm_cfg=dict(type='BN')),
            ConvModule(6, 5, 3, stride=2, padding=2, dilation=2,
                       norm_cfg=dict(type='BN'))))
    moe = _single_expert(seq, grid=(3, 3))
    assert [step.masked for step in moe.expert_steps] == [False, True]
    for size in SIZES:
        _assert_same(moe, seq, torch.randn(2, 4, *size))


@pytest.mark.parametrize('patch_size', [8, (5, 11), 64])
def test_patch_size_equals_dense(patch_size):
    conv = nn.Conv2d(5, 7, 3, padding=2, dilation=2)
    moe = _single_expert(conv, grid=None, patch_size=patch_size)
    _assert_same(moe, conv, torch.randn(3, 5, 37, 53))


def test_unpadded_and_same_padding_convs_equal_dense():
    for conv in (nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 4, padding='same'),
                 nn.Conv2d(3, 4, (3, 5), stride=(2, 1), padding=(0, 2))):
        moe = _single_expert(conv, grid=(2, 3))
        _assert_same(moe, conv, torch.randn(2, 3, 23, 29))


@pytest.mark.parametrize('num_shared', [0, 1])
def test_forced_expert_equals_dense(num_shared):
    """All patches forced to one expert with weight 1 is that expert."""
    conv = randomise_batch_norms(
        ConvModule(6, 8, 3, padding=1, norm_cfg=dict(type='BN')))
    moe = PatchConvMoE(conv, num_experts=4, top_k=2, grid=(3, 3)).eval()
    moe.experts[2].load_state_dict(conv.state_dict())
    moe.forced_expert = 2
    x = torch.randn(2, 6, 37, 53)
    _assert_same(moe, conv, x)
    assert moe.last_routing.experts.unique().tolist() == [2]
    if num_shared:
        shared = PatchConvMoE(conv, num_experts=4, top_k=2,
                              num_shared_experts=1).eval()
        shared.experts[2].load_state_dict(conv.state_dict())
        shared.forced_expert = 2
        with torch.no_grad():
            expected = conv.eval()(x) + shared.shared_experts[0](x)
            torch.testing.assert_close(shared(x), expected, atol=1e-5,
                                       rtol=1e-5)


def test_two_experts_mix_by_weights():
    """With k=2 and both experts equal to the dense conv, the mixture equals
    it too (weights sum to 1), whatever the gate chose."""
    conv = nn.Conv2d(4, 4, 3, padding=1)
    moe = PatchConvMoE(conv, num_experts=2, top_k=2, expert_init='copy',
                       init_noise=0.0, gate=dict(type='GAPLinearGate'))
    _assert_same(moe, copy.deepcopy(conv), torch.randn(2, 4, 20, 21))


def _windowed(module: nn.Module, batch: int, **kwargs) -> PatchConvMoE:
    """Two copies of ``module`` as experts, the patches split between them
    round-robin: every patch runs on its window, none on the whole map."""
    from moe_seg_plugin.moe.reference import spread_bias
    kwargs.setdefault('grid', (3, 3))
    moe = PatchConvMoE(module, num_experts=2, top_k=1, expert_init='copy',
                       init_noise=0.0, **kwargs).eval()

    def spread(_, args, logits):
        return logits + spread_bias(logits.shape[0], 2, 1)

    moe.gate.register_forward_hook(spread)
    return moe


@pytest.mark.parametrize('kernel,dilation,stride', [(1, 1, 1), (3, 1, 1),
                                                    (3, 6, 1), (3, 2, 2),
                                                    (1, 1, 2), (3, 1, 2)])
@pytest.mark.parametrize('grid', [(3, 3), (4, 4)])
def test_windowed_conv2d_equals_dense(kernel, dilation, stride, grid):
    conv = nn.Conv2d(5, 7, kernel, stride=stride, dilation=dilation,
                     padding=dilation * (kernel // 2))
    for batch in (1, 3):
        moe = _windowed(conv, batch, grid=grid)
        for size in SIZES:
            _assert_same(moe, conv, torch.randn(batch, 5, *size))
            assert moe.last_routing.experts.unique().numel() == 2


@pytest.mark.parametrize('make', [
    lambda: DepthwiseSeparableConvModule(
        6, 8, 3, dilation=2, padding=2, norm_cfg=dict(type='BN')),
    lambda: ConvModule(6, 8, 3, stride=2, padding=1,
                       norm_cfg=dict(type='BN')),
    lambda: nn.Sequential(
        ConvModule(6, 4, 3, padding=1, norm_cfg=dict(type='BN')),
        ConvModule(4, 8, 3, stride=2, padding=2, dilation=2,
                   norm_cfg=dict(type='BN'))),
    lambda: nn.Conv2d(6, 8, 4, padding='same'),
    lambda: nn.Conv2d(6, 8, (3, 5), stride=(2, 1), padding=(0, 2)),
])
@pytest.mark.parametrize('split', [dict(grid=(3, 4)),
                                   dict(grid=None, patch_size=(5, 11))])
def test_windowed_modules_equal_dense(make, split):
    module = randomise_batch_norms(make())
    moe = _windowed(module, 2, **split)
    for size in SIZES:
        _assert_same(moe, module, torch.randn(2, 6, *size))
