"""Randomised conv geometries: the sparse, windowed dispatch against the
naive reference (every expert on every patch window, masked).

Kernel, stride, dilation and padding are drawn per axis, padding up to
beyond ``dilation * (kernel - 1) / 2`` (over-padded layers, whose border
windows can lie wholly in the padding), with input sizes, grids or patch
sizes, N > k and routing spread over the experts so that experts run on
windows, not on the whole map.
"""
import random
from typing import Tuple

import pytest
import torch
from torch import nn

from moe_seg_plugin.moe import PatchConvMoE
from moe_seg_plugin.moe.reference import naive_forward, spread_bias

#: Every test runs with both dispatches (tests/moe/conftest.py).
pytestmark = pytest.mark.usefixtures('dispatch')

CASES = 240
SEED = 20261128


def _axis(rng: random.Random) -> Tuple[int, int, int, int]:
    """kernel, stride, dilation, padding of one axis."""
    kernel = rng.choice([1, 1, 2, 3, 3, 5])
    stride = rng.choice([1, 1, 2, 3])
    dilation = rng.choice([1, 1, 2, 3]) if kernel > 1 else 1
    halo = dilation * (kernel - 1) // 2
    padding = rng.randint(0, halo + 3)
    return kernel, stride, dilation, padding


def _conv(rng: random.Random, cin: int, cout: int) -> nn.Conv2d:
    rows, cols = _axis(rng), _axis(rng)
    return nn.Conv2d(cin, cout, (rows[0], cols[0]), stride=(rows[1], cols[1]),
                     dilation=(rows[2], cols[2]), padding=(rows[3], cols[3]))


def _out_size(module: nn.Module, size: int, axis: int) -> int:
    for conv in [m for m in module.modules() if isinstance(m, nn.Conv2d)]:
        extent = conv.dilation[axis] * (conv.kernel_size[axis] - 1) + 1
        size = (size + 2 * conv.padding[axis] - extent) // conv.stride[axis] + 1
        if size < 1:
            return 0
    return size


def _case(index: int):
    rng = random.Random(SEED + index)
    cin, cout = rng.randint(1, 4), rng.randint(1, 4)
    if rng.random() < 0.25:
        # Two convs: the second reads zero padding of an intermediate map
        # (the stage-wise path with masks).
        mid = rng.randint(1, 3)
        module = nn.Sequential(_conv(rng, cin, mid), nn.ReLU(),
                               _conv(rng, mid, cout))
    else:
        module = _conv(rng, cin, cout)
    for _ in range(50):
        height, width = rng.randint(3, 26), rng.randint(3, 26)
        out = (_out_size(module, height, 0), _out_size(module, width, 1))
        if min(out) >= 2:
            break
    else:
        return None
    num_experts = rng.randint(3, 6)
    top_k = rng.randint(1, min(3, num_experts - 1))
    if rng.random() < 0.7:
        split = dict(grid=(rng.randint(2, 5), rng.randint(2, 5)))
    else:
        split = dict(grid=None, patch_size=(rng.randint(1, 6),
                                            rng.randint(1, 6)))
    settings = dict(num_experts=num_experts, top_k=top_k, **split,
                    gate=dict(type='GAPLinearGate'))
    batch = rng.randint(1, 2)
    return module, settings, (batch, cin, height, width)


def _spread(layer: PatchConvMoE, patches: int) -> None:
    bias = spread_bias(patches, layer.num_experts, layer.top_k, scale=20.0)
    layer.gate.register_forward_hook(lambda m, args, out: out + bias)


def test_random_geometries_equal_the_naive_reference():
    checked = windowed = over_padded = 0
    for index in range(CASES):
        case = _case(index)
        if case is None:
            continue
        module, settings, shape = case
        torch.manual_seed(index)
        layer = PatchConvMoE(module, **settings).eval()
        x = torch.randn(shape, requires_grad=True)
        layout = layer.layout(shape[2], shape[3])
        _spread(layer, shape[0] * layout.cells)
        got = layer(x)
        counts = torch.bincount(layer.last_routing.experts.flatten(),
                                minlength=layer.num_experts)
        total = layer.last_routing.num_patches
        windowed += bool(((counts > 0) & (counts < total)).any())
        expected = naive_forward(layer, x)
        detail = f'case {index}: {module} {settings} input {shape}'
        assert got.shape == expected.shape, detail
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4,
                                   msg=lambda m: f'{detail}\n{m}')
        target = torch.randn_like(got)
        grads = [
            torch.autograd.grad((out * target).sum(), [x] +
                                list(layer.experts.parameters()),
                                allow_unused=True)
            for out in (got, expected)
        ]
        for a, b in zip(*grads):
            if a is None or b is None:
                assert (a is None or not a.any()) and (b is None
                                                       or not b.any())
                continue
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4,
                                       msg=lambda m: f'{detail}\n{m}')
        over_padded += any(
            conv.padding[a] > conv.dilation[a] * (conv.kernel_size[a] - 1) / 2
            for conv in module.modules() if isinstance(conv, nn.Conv2d)
            for a in (0, 1))
        checked += 1
    print(f'{checked} geometries checked, {windowed} with experts on '
          f'windows, {over_padded} over-padded')
    assert checked >= 0.9 * CASES
    assert windowed >= 0.8 * checked
    assert over_padded >= 0.3 * checked


@pytest.mark.parametrize('grid', [(1, 7), (2, 5)])
def test_window_wholly_in_the_padding(grid):
    """The reported case: every border window beyond the input's end."""
    torch.manual_seed(0)
    layer = PatchConvMoE(nn.Conv2d(3, 4, 1, padding=(0, 3)), num_experts=3,
                         top_k=2, grid=grid,
                         gate=dict(type='GAPLinearGate')).eval()
    x = torch.randn(2, 3, 6, 9)
    _spread(layer, 2 * grid[0] * grid[1])
    with torch.no_grad():
        torch.testing.assert_close(layer(x), naive_forward(layer, x),
                                   atol=1e-5, rtol=1e-5)
