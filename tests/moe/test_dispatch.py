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

    def recording(expert, steps, windows, *args):
        calls.append((expert, tuple(windows.shape)))
        return run(expert, steps, windows, *args)

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


def _paths(monkeypatch) -> list:
    """Record which way the layer's forward took (see moe/dispatch.py)."""
    from moe_seg_plugin.moe import layer
    taken = []
    for owner, name in ((layer, 'run_patch_by_patch'),
                        (layer.CutWindows, 'apply'),
                        (layer, 'gather_windows')):
        real = getattr(owner, name)
        label = {'run_patch_by_patch': 'patch by patch', 'apply': 'views',
                 'gather_windows': 'indexed'}[name]

        def call(*args, real=real, label=label, **kwargs):
            taken.append(label)
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, call)
    return taken


@pytest.mark.parametrize('settings,training,grad,want', [
    (dict(), True, True, 'views'),
    (dict(), False, False, 'patch by patch'),
    (dict(), False, True, 'views'),  # an input's gradient in eval
    (dict(dispatch='views'), True, True, 'views'),
    (dict(dispatch='indexed'), True, True, 'indexed'),
    (dict(dispatch='indexed'), False, False, 'indexed'),
    (dict(capacity_factor=1.0), True, True, 'indexed'),
    (dict(capacity_factor=1.0, dispatch='views'), False, False, 'indexed'),
])
def test_the_dispatch_each_setting_and_mode_takes(settings, training, grad,
                                                  want, monkeypatch):
    taken = _paths(monkeypatch)
    moe = _moe(**settings).train(training)
    x = torch.randn(2, 6, 13, 17, requires_grad=grad)
    with torch.set_grad_enabled(grad):
        moe(x)
    # Patch by patch cuts each patch's window with the views' step.
    assert taken[0] == want
    assert set(taken[1:]) == ({'views'} if want == 'patch by patch' else
                              set())


def test_tracing_takes_the_indexed_dispatch(monkeypatch):
    """A trace (FLOP counting, TorchScript export) must not freeze one
    input's routing into per-window operations."""
    taken = _paths(monkeypatch)
    moe = _moe().eval()
    layout = moe.layout  # sizes are tensors in a trace: as FlopAnalyzer
    moe.layout = lambda h, w: layout(int(h), int(w))
    torch.jit.trace(moe, torch.randn(1, 6, 12, 12), check_trace=False)
    assert taken == ['indexed']


#: Tensor methods and ops that read a tensor's values to the host (or make
#: a shape of them), a device sync on an accelerator.
HOST_READS = {'tolist', 'item', '__bool__', '__int__', '__float__',
              '__index__', 'numpy', 'nonzero', 'masked_select', 'unique',
              'bincount', 'argwhere'}


@pytest.mark.parametrize('dispatch', ['views', 'indexed'])
@pytest.mark.parametrize('training,capacity', [(True, None), (False, None),
                                               (True, 1.0), (False, 1.0)])
def test_at_most_one_host_read_per_forward(dispatch, training, capacity):
    from torch.overrides import TorchFunctionMode

    class HostReads(TorchFunctionMode):

        def __init__(self):
            super().__init__()
            self.reads = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, '__name__', '')
            if name in HOST_READS:
                self.reads.append(name)
            return func(*args, **(kwargs or {}))

    moe = _moe(dispatch=dispatch, capacity_factor=capacity,
               balance_loss=dict(type='MoESwitchLoss')).train(training)
    x = torch.randn(2, 6, 13, 17, requires_grad=training)
    with torch.set_grad_enabled(training):
        with HostReads() as mode:
            out = moe(x)
        if training:
            (out.mean() + sum(moe.balance_loss().values())).backward()
    assert mode.reads == ([] if capacity else ['tolist'])


@pytest.mark.parametrize('dispatch', ['views', 'indexed'])
@pytest.mark.parametrize('training', [True, False])
def test_forward_changes_no_setting_of_the_layer(dispatch, training):
    """Forward leaves every attribute as it was but its record of the
    routing and its per-size caches."""
    moe = _moe(dispatch=dispatch).train(training)
    moe(torch.randn(1, 6, 10, 10))  # sizes seen once: caches filled
    before = {key: value for key, value in vars(moe).items()
              if key not in ('last_routing', '_layouts')}
    state = {key: value.clone() for key, value in moe.state_dict().items()}
    moe.eval()  # running statistics would move in training
    moe.train(training)
    with torch.no_grad():
        moe(torch.randn(1, 6, 10, 10))
    after = {key: value for key, value in vars(moe).items()
             if key not in ('last_routing', '_layouts')}
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert after[key] is value or after[key] == value, key
    if not training:
        for key, value in moe.state_dict().items():
            assert torch.equal(value, state[key]), key


def test_cut_windows_and_mix_into_map_gradients():
    """The views dispatch's two autograd Functions against numerical
    gradients (float64): windows past the map, padded patches, a grid of
    unequal patches, two images."""
    from torch.autograd import gradcheck

    from moe_seg_plugin.moe.dispatch import CutWindows, MixIntoMap
    layer = PatchConvMoE(nn.Conv2d(2, 3, 3, padding=2, dilation=2),
                         num_experts=3, top_k=2, grid=(2, 3))
    layout = layer.layout(7, 8)
    torch.manual_seed(0)
    runs = [[0, 4, 11], [], [1, 2, 3, 5, 6, 7, 8, 9, 10, 4, 0, 11]]
    x = torch.randn(2, 2, 7, 8, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda x: CutWindows.apply(x, layout, runs), (x, ))
    # Each of the 24 rows is one slot's, as the grouping gives them.
    rows = torch.randperm(24).view(12, 2).tolist()
    weights = torch.rand(12, 2, dtype=torch.float64, requires_grad=True)
    outputs = [torch.randn(count, 3, 4, 3, dtype=torch.float64,
                           requires_grad=True) for count in (5, 0, 19)]
    assert gradcheck(
        lambda w, *o: MixIntoMap.apply(layout, rows, w, False, False, *o),
        (weights, *outputs))
    # With the experts' final ReLU applied by the mix, whose backward writes
    # the gradients over the outputs (so one backward per forward: against
    # autograd through a ReLU and the plain mix).
    grads, target = [], torch.randn(2, 3, 7, 8, dtype=torch.float64)
    for relu_in_mix in (True, False):
        inputs = [t.detach().clone().requires_grad_()
                  for t in (weights, *outputs)]
        given = [t.clone() if relu_in_mix else t.relu() for t in inputs[1:]]
        out = MixIntoMap.apply(layout, rows, inputs[0], False, relu_in_mix,
                               *given)
        (out * target).sum().backward(retain_graph=True)
        grads.append([out.detach()] + [t.grad for t in inputs])
        if relu_in_mix:
            with pytest.raises(RuntimeError, match='a second backward'):
                out.sum().backward()
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want)


def _torch_calls(moe: PatchConvMoE, x: torch.Tensor) -> int:
    """torch functions and tensor methods one training forward calls."""
    from torch.overrides import TorchFunctionMode

    class Count(TorchFunctionMode):

        def __init__(self):
            super().__init__()
            self.calls = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.calls += 1
            return func(*args, **(kwargs or {}))

    with Count() as count:
        moe(x)
    return count.calls


@pytest.mark.parametrize('settings', [dict(capacity_factor=1.25),
                                      dict(dispatch='indexed')])
def test_indexed_op_count_does_not_grow_with_batch_or_patches(settings):
    """Capacity mode (and the indexed default mode while every expert is
    chosen): as many operations for 3 images as for 1, and for 4x4 patches
    as for 2x2 but for the gate's pool, one sum per grid row and column
    (4 + 4 against 2 + 2)."""
    counts = []
    for batch, grid in ((1, (2, 2)), (3, (2, 2)), (3, (4, 4))):
        moe = _moe(num_experts=4, grid=grid, **settings).train()
        bias = spread_bias(batch * grid[0] * grid[1], 4, 2)
        moe.gate.register_forward_hook(lambda m, args, out: out + bias)
        counts.append(_torch_calls(moe, torch.randn(batch, 6, 16, 16)))
    assert counts[0] == counts[1] == counts[2] - 4


def test_views_op_count_grows_with_the_windows():
    """The views dispatch's price: operations per window and slot."""
    counts = []
    for batch, grid in ((1, (2, 2)), (3, (4, 4))):
        moe = _moe(num_experts=4, grid=grid, dispatch='views').train()
        counts.append(_torch_calls(moe, torch.randn(batch, 6, 16, 16)))
    assert counts[1] > 2 * counts[0]


def test_a_layer_pickled_before_the_dispatch_setting_loads_as_auto():
    import pickle
    moe = _moe(dispatch='indexed')
    state = moe.__getstate__()
    del state['dispatch']
    old = PatchConvMoE.__new__(PatchConvMoE)
    old.__setstate__(state)
    assert old.dispatch == 'auto'
    assert 'dispatch' not in repr(old)
    assert pickle.loads(pickle.dumps(moe)).dispatch == 'indexed'
    assert "dispatch='indexed'" in repr(moe)
