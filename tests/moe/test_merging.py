"""expert_scope='conv': experts are the replaced convolution only, the
layers after it run once on the mixed map, and in eval each patch's kernels
are merged into one (moe/merging.py, dispatch.run_merged)."""
import logging
import pickle

import pytest
import torch
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from torch import nn

from moe_seg_plugin.moe import PatchConvMoE
from moe_seg_plugin.moe.merging import merge_kernels, split_conv_scope
from moe_seg_plugin.moe.reference import (naive_forward,
                                          randomise_batch_norms, spread_bias)

BN = dict(type='BN')


def conv_module(cin=6, cout=5, kernel=3, stride=1, dilation=1, bias=False):
    module = ConvModule(cin, cout, kernel, stride=stride,
                        padding=dilation * (kernel // 2), dilation=dilation,
                        bias=bias, norm_cfg=BN, act_cfg=dict(type='ReLU'))
    randomise_batch_norms(module)
    return module


def spread(layer: PatchConvMoE) -> None:
    """Route patches round-robin over the experts (a fresh gate sends most
    of them the same way, which would leave merging little to do)."""

    def offset(module, args, logits):
        return logits + spread_bias(logits.shape[0], layer.num_experts,
                                    layer.top_k, scale=20.0)

    layer.gate.register_forward_hook(offset)


def merged_layer(kernel, stride, dilation, bias, grid):
    """A ConvModule (eval) and a conv-scope layer of 4 experts, top-2, over
    it, routing spread (seeded)."""
    torch.manual_seed(0)
    module = conv_module(kernel=kernel, stride=stride, dilation=dilation,
                         bias=bias).eval()
    layer = PatchConvMoE(module, num_experts=4, top_k=2, grid=grid,
                         expert_scope='conv').eval()
    spread(layer)
    return module, layer


GEOMETRIES = [
    # (input, kernel, stride, dilation, grid, bias)
    ((2, 6, 23, 31), 3, 1, 1, (3, 3), False),
    ((3, 6, 19, 17), 3, 2, 1, (2, 3), True),
    ((1, 6, 25, 21), 3, 1, 2, (3, 2), False),
    ((2, 6, 15, 27), 1, 1, 1, (4, 4), True),
    ((2, 6, 21, 21), 5, 2, 2, (3, 3), False),
]


@pytest.mark.parametrize('shape,kernel,stride,dilation,grid,bias',
                         GEOMETRIES)
def test_merged_equals_the_unmerged_mix(dispatch, shape, kernel, stride,
                                        dilation, grid, bias):
    module, layer = merged_layer(kernel, stride, dilation, bias, grid)
    x = torch.randn(shape)
    with torch.no_grad():
        merged = layer(x)
        layer.merge_experts = False
        unmerged = layer(x)
    assert merged.shape == module(x).shape
    assert torch.allclose(merged, unmerged, atol=1e-5, rtol=0)
    assert len({tuple(row) for row in
                layer.last_routing.experts.tolist()}) > 1


@pytest.mark.parametrize('shape,kernel,stride,dilation,grid,bias',
                         GEOMETRIES)
def test_traced_merged_slices_windows_and_joins_patches(
        monkeypatch, shape, kernel, stride, dilation, grid, bias):
    """Under tracing (ONNX export) the merged layer cuts windows with fixed
    slices and joins the patches by concatenation: the same output as
    the unmerged mix, and no gather in the graph."""
    from moe_seg_plugin.moe import dispatch
    module, layer = merged_layer(kernel, stride, dilation, bias, grid)
    x = torch.randn(shape)
    with torch.no_grad():
        layer.merge_experts = False
        unmerged = layer(x)
        layer.merge_experts = True
        calls = []
        real = dispatch.run_merged_sliced
        monkeypatch.setattr(
            'moe_seg_plugin.moe.layer.run_merged_sliced',
            lambda *args: calls.append(1) or real(*args))
        monkeypatch.setattr(torch.compiler, 'is_compiling', lambda: True)
        traced = layer(x)
    assert calls == [1]
    assert torch.allclose(traced, unmerged, atol=1e-5, rtol=0)


@pytest.mark.parametrize('merge', [True, False])
def test_merged_convolves_each_window_once(dispatch, monkeypatch, merge):
    """Merged: one kernel per patch whatever k (views: one convolution per
    patch; indexed: one grouped convolution of all); unmerged: k per patch
    (views)."""
    module = conv_module().eval()
    layer = PatchConvMoE(module, num_experts=4, top_k=2, expert_scope='conv',
                         merge_experts=merge).eval()
    spread(layer)
    calls = []
    real = torch.nn.functional.conv2d

    def counted(x, weight, *args):
        if weight.shape[2:] == (3, 3):  # the gate's are 1x1
            calls.append(weight.shape[0])
        return real(x, weight, *args)

    monkeypatch.setattr(torch.nn.functional, 'conv2d', counted)
    with torch.no_grad():
        layer(torch.randn(2, 6, 24, 24))
    if merge:  # 2 images x 9 patches, 5 output channels each
        assert sum(calls) == 18 * 5
        assert len(calls) == (18 if dispatch == 'views' else 1)
    elif dispatch == 'views':  # each patch's k experts
        assert calls == [5] * 36


def test_merge_kernels_against_hand_computed():
    experts = [nn.Conv2d(2, 1, 1, bias=True) for _ in range(3)]
    for value, expert in zip((1.0, 2.0, 4.0), experts):
        nn.init.constant_(expert.weight, value)
        nn.init.constant_(expert.bias, -value)
    chosen = torch.tensor([[0, 2], [1, 0]])
    weights = torch.tensor([[0.25, 0.75], [0.5, 0.5]])
    kernels, biases = merge_kernels(experts, chosen, weights)
    # 0.25 * 1 + 0.75 * 4 = 3.25; 0.5 * 2 + 0.5 * 1 = 1.5
    assert kernels.shape == (2, 1, 2, 1, 1)
    assert kernels.flatten(1).tolist() == [[3.25, 3.25], [1.5, 1.5]]
    assert biases.tolist() == [[-3.25], [-1.5]]


@pytest.mark.parametrize('make', [
    lambda: nn.Conv2d(6, 5, 3, padding=1),
    lambda: conv_module(),
    lambda: nn.Sequential(nn.Conv2d(6, 5, 3, padding=1), nn.BatchNorm2d(5),
                          nn.PReLU(5)),
    lambda: nn.Sequential(conv_module(), nn.Dropout2d(0.1)),
])
@pytest.mark.parametrize('merge', [True, False])
def test_one_expert_equals_the_module(dispatch, make, merge):
    """The N=1 equivalence (docs/en/advanced_guides/design.md) holds in
    the conv scope, in eval (merged or not) and in training (the tail's
    batch norm then normalises the mixed map, which is the module's conv
    output)."""
    torch.manual_seed(1)
    module = make()
    randomise_batch_norms(module)
    layer = PatchConvMoE(module, num_experts=1, top_k=1, expert_scope='conv',
                         expert_init='copy', init_noise=0.0,
                         merge_experts=merge)
    x = torch.randn(2, 6, 17, 22)
    for train in (False, True):
        module.train(train)
        layer.train(train)
        torch.manual_seed(2)  # the same dropout mask
        expected = module(x)
        torch.manual_seed(2)
        assert torch.allclose(layer(x), expected, atol=1e-5), train


@pytest.mark.parametrize('module,why', [
    (DepthwiseSeparableConvModule(4, 4, 3, padding=1), 'has 2 convolutions'),
    (nn.Sequential(nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3)),
     'has 2 convolutions'),
    (nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 3)),
     'pixel-wise layer before its convolution'),
])
def test_modules_without_one_leading_conv_are_refused(module, why):
    with pytest.raises(ValueError) as error:
        PatchConvMoE(module, expert_scope='conv')
    message = str(error.value)
    assert '\n' not in message
    assert why in message and "expert_scope='module'" in message
    PatchConvMoE(module, expert_scope='module')  # still replaceable


def test_split_keeps_the_tail_and_names_the_conv():
    module = nn.Sequential(conv_module(), nn.Dropout2d(0.1))
    path, conv, tail = split_conv_scope(module)
    assert path == '0.conv' and conv is module[0].conv
    assert isinstance(tail[0].conv, nn.Identity)
    assert set(tail.state_dict()) == {
        key for key in module.state_dict() if not key.startswith('0.conv.')}


@pytest.mark.parametrize('value,key', [('layer', 'expert_scope'),
                                       ('yes', 'merge_experts')])
def test_bad_settings_name_the_key(value, key):
    with pytest.raises(ValueError, match=key):
        PatchConvMoE(conv_module(), **{key: value})


def test_upcycling_a_dense_checkpoint_into_conv_experts(caplog):
    torch.manual_seed(3)
    module = conv_module().eval()
    layer = PatchConvMoE(module, num_experts=3, top_k=2, expert_scope='conv',
                         expert_init='copy', init_noise=0.0)
    reinitialise = nn.Sequential(conv_module())  # other weights
    layer.tail.load_state_dict(
        {k: v for k, v in reinitialise[0].state_dict().items()
         if not k.startswith('conv.')})
    with caplog.at_level(logging.INFO, logger='moe_seg_plugin'):
        result = layer.load_state_dict(module.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert 'upcycled' in caplog.text
    layer.eval()
    spread(layer)
    x = torch.randn(2, 6, 16, 16)
    with torch.no_grad():  # every expert and the tail are the module's
        assert torch.allclose(layer(x), module(x), atol=1e-5)


def test_a_conv_scope_checkpoint_loads_into_a_fresh_layer():
    torch.manual_seed(4)
    first = PatchConvMoE(conv_module(), num_experts=3, expert_scope='conv')
    second = PatchConvMoE(conv_module(), num_experts=3, expert_scope='conv')
    second.load_state_dict(first.state_dict())
    for a, b in zip(first.state_dict().values(),
                    second.state_dict().values()):
        assert torch.equal(a, b)
    wrong = PatchConvMoE(conv_module(cout=7), num_experts=3,
                         expert_scope='conv')
    with pytest.raises(ValueError, match='shape'):
        wrong.load_state_dict(first.state_dict())


def test_training_reaches_the_experts_and_the_tail(dispatch):
    torch.manual_seed(5)
    layer = PatchConvMoE(conv_module(), num_experts=4, top_k=2,
                         expert_scope='conv').train()
    spread(layer)
    layer(torch.randn(2, 6, 18, 18)).square().mean().backward()
    chosen = set(layer.last_routing.experts.flatten().tolist())
    for index, expert in enumerate(layer.experts):
        assert (expert.weight.grad is not None) == (index in chosen)
    assert layer.tail.bn.weight.grad.abs().sum() > 0
    assert layer.gate.convs[0].weight.grad.abs().sum() > 0


def test_merged_in_capacity_mode_drops_as_the_unmerged(dispatch):
    torch.manual_seed(6)
    layer = PatchConvMoE(conv_module(), num_experts=4, top_k=2,
                         expert_scope='conv', capacity_factor=0.5).eval()
    x = torch.randn(2, 6, 18, 18)
    with torch.no_grad():
        merged = layer(x)
        assert not layer.last_routing.kept.all()  # some choices dropped
        layer.merge_experts = False
        assert torch.allclose(merged, layer(x), atol=1e-5)


def test_eval_gradients_flow_through_merged_kernels():
    torch.manual_seed(7)
    layer = PatchConvMoE(conv_module(), num_experts=4, top_k=2,
                         expert_scope='conv').eval()
    spread(layer)
    x = torch.randn(1, 6, 15, 15, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad.abs().sum() > 0
    assert sum(e.weight.grad.abs().sum() for e in layer.experts
               if e.weight.grad is not None) > 0


def test_repr_and_old_pickles():
    layer = PatchConvMoE(conv_module(), expert_scope='conv',
                         merge_experts=False)
    assert "expert_scope='conv', merge_experts=False" in repr(layer)
    assert 'expert_scope' not in repr(PatchConvMoE(conv_module()))
    old = PatchConvMoE(conv_module())
    for key in ('expert_scope', 'merge_experts', 'conv_path', 'tail'):
        old.__dict__.pop(key, None)
    restored = pickle.loads(pickle.dumps(old))
    assert restored.expert_scope == 'module' and restored.tail is None
    with torch.no_grad():
        restored.eval()(torch.randn(1, 6, 12, 12))


def test_a_batch_norm_tail_folds_into_the_merged_kernels(monkeypatch):
    """Patch by patch (views, no autograd) a ConvModule tail's batch norm
    runs on no map: it is folded into each patch's kernel (the equality
    with the unmerged mix is pinned above)."""
    layer = PatchConvMoE(conv_module(), num_experts=4, top_k=2,
                         expert_scope='conv', dispatch='views').eval()
    spread(layer)
    normalised = []
    real = torch.nn.functional.batch_norm

    def counted(x, *args, **kwargs):
        normalised.append(x.shape[1])
        return real(x, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, 'batch_norm', counted)
    x = torch.randn(1, 6, 18, 18)
    with torch.no_grad():
        layer(x)
        assert 5 not in normalised  # the tail's 5 channels
        layer.merge_experts = False
        layer(x)
        assert 5 in normalised


@pytest.mark.parametrize('capacity', [None, 0.5])
def test_merged_training_has_the_unmerged_gradients(dispatch, capacity):
    """Training merges the kernels too; every gradient (input, experts,
    tail, gate) equals the unmerged dispatch's."""
    torch.manual_seed(8)
    layer = PatchConvMoE(conv_module(bias=True), num_experts=4, top_k=2,
                         expert_scope='conv', grid=(2, 3),
                         capacity_factor=capacity).train()
    spread(layer)
    x = torch.randn(2, 6, 17, 23)
    target = torch.randn(2, 5, 17, 23)
    grads = []
    for merge in (True, False):
        layer.merge_experts = merge
        layer.zero_grad()
        inputs = x.clone().requires_grad_(True)
        loss = ((layer(inputs) - target) ** 2).mean()
        loss.backward()
        grads.append([inputs.grad] + [
            torch.zeros_like(p) if p.grad is None else p.grad
            for p in layer.parameters()])
    for merged, unmerged in zip(*grads):
        assert torch.allclose(merged, unmerged, atol=1e-5)


@pytest.mark.parametrize('train', [False, True])
def test_the_naive_reference_applies_the_tail(dispatch, train):
    torch.manual_seed(9)
    layer = PatchConvMoE(conv_module(), num_experts=4, top_k=2,
                         expert_scope='conv').train(train)
    spread(layer)
    x = torch.randn(2, 6, 19, 19)
    with torch.no_grad():
        assert torch.allclose(layer(x), naive_forward(layer, x), atol=1e-5)


# Low-rank experts (expert_rank): a shared convolution to r channels, then
# 1x1 experts r -> C_out, merged per patch.

@pytest.mark.parametrize('shape,kernel,stride,dilation,grid,bias',
                         GEOMETRIES)
def test_low_rank_merged_unmerged_and_naive_agree(dispatch, shape, kernel,
                                                  stride, dilation, grid,
                                                  bias):
    torch.manual_seed(10)
    module = conv_module(kernel=kernel, stride=stride, dilation=dilation,
                         bias=bias).eval()
    layer = PatchConvMoE(module, num_experts=4, top_k=2, grid=grid,
                         expert_scope='conv', expert_rank=3).eval()
    spread(layer)
    x = torch.randn(shape)
    with torch.no_grad():
        merged = layer(x)
        layer.merge_experts = False
        unmerged = layer(x)
        naive = naive_forward(layer, x)
    assert merged.shape == module(x).shape
    assert torch.allclose(merged, unmerged, atol=1e-5)
    assert torch.allclose(merged, naive, atol=1e-5)


def test_one_low_rank_expert_is_its_stem_then_its_map(dispatch):
    torch.manual_seed(11)
    module = conv_module(stride=2, bias=True).train()
    layer = PatchConvMoE(module, num_experts=1, top_k=1, expert_scope='conv',
                         expert_rank=4).train()
    x = torch.randn(2, 6, 21, 17)
    expected = layer.tail(layer.experts[0](layer.stem(x)))
    layer.tail.bn.reset_running_stats()
    assert torch.allclose(layer(x), expected, atol=1e-5)


def test_low_rank_parameters_by_hand():
    module = conv_module(cin=16, cout=32, kernel=3, bias=True)
    layer = PatchConvMoE(module, num_experts=8, expert_scope='conv',
                         expert_rank=4)
    own = (sum(p.numel() for p in layer.stem.parameters()) +
           sum(p.numel() for p in layer.experts.parameters()))
    assert own == 4 * 16 * 3 * 3 + 8 * (32 * 4 + 32)  # stem + 8 x (map, bias)
    assert "expert_scope='conv', expert_rank=4" in repr(layer)


@pytest.mark.parametrize('settings,message', [
    (dict(expert_rank=4), "set expert_scope='conv'"),
    (dict(expert_rank=0, expert_scope='conv'), 'expert_rank must be'),
    (dict(expert_rank=4, expert_scope='conv', expert_init='copy'),
     "use expert_init='random'"),
])
def test_bad_low_rank_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        PatchConvMoE(conv_module(), **settings)


def test_a_grouped_convolution_has_no_low_rank_form():
    depthwise = nn.Conv2d(6, 6, 3, padding=1, groups=6)
    with pytest.raises(ValueError, match='groups=6'):
        PatchConvMoE(depthwise, expert_scope='conv', expert_rank=2)


def test_a_stock_checkpoint_is_dropped_not_refused_by_low_rank(caplog):
    module = conv_module()
    layer = PatchConvMoE(module, num_experts=2, expert_scope='conv',
                         expert_rank=2)
    with caplog.at_level(logging.WARNING, logger='moe_seg_plugin'):
        layer.load_state_dict(module.state_dict(), strict=False)
    assert "expert_init='random' they are not used" in caplog.text


def test_low_rank_training_reaches_stem_experts_and_gate(dispatch):
    torch.manual_seed(12)
    layer = PatchConvMoE(conv_module(), num_experts=4, top_k=2,
                         expert_scope='conv', expert_rank=3).train()
    spread(layer)
    layer(torch.randn(2, 6, 18, 18)).square().mean().backward()
    for module in (layer.stem, layer.experts[0], layer.gate.convs[0]):
        assert module.weight.grad.abs().sum() > 0
