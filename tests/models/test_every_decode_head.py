"""Every decode head registered in MMSeg, wrapped by PatchMoEHead.

One harness over all heads (the cases of decode_head_cases.py); each head is
checked for

* equivalence: one expert, top-1, upcycled from a stock head's weights
  (``expert_init='copy'``, ``init_noise=0``) gives the stock head's outputs
  in eval;
* training: 4 experts, top-2, a 3x3 grid, ``loss()`` (with ``prev_output``
  for cascade heads) and backward give finite gradients that reach the gate
  and the experts.

Heads that cannot be covered are listed with the reason (``SKIPPED``), and
every registered head must be in one of the two tables.
"""
from typing import Dict, List

import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.models.decode_heads.cascade_decode_head import \
    BaseCascadeDecodeHead
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import Tensor

from moe_seg_plugin.compat import compiled_ops_available
from moe_seg_plugin.models.heads.patch_moe_head import decode_head_types
from moe_seg_plugin.moe import PatchConvMoE

from decode_head_cases import (BATCH, CASES, COMPILED_OPS,  # noqa: I100
                               NUM_CLASSES, SKIPPED, Shapes, build_head)

#: Every registered head: the covered ones, then the skipped ones with why.
ALL_HEADS = [pytest.param(name) for name in sorted(CASES)] + [
    pytest.param(name, marks=pytest.mark.skip(reason=reason))
    for name, reason in sorted(SKIPPED.items())
]


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _maps(shapes: Shapes, pairs: bool = False) -> List:
    maps = [torch.randn(BATCH, c, s, s) for c, s in shapes]
    if pairs:
        return [[m, torch.randn(BATCH, m.shape[1])] for m in maps]
    return maps


def head_inputs(head_type: str, train: bool = False):
    """Inputs of ``head_type``'s forward (eval, or training)."""
    case = CASES[head_type]
    if train and case.train_maps:
        return _maps(case.train_maps)
    maps = _maps(case.maps, case.pairs)
    return maps[0] if case.bare else maps


def _prev_output(head, inputs) -> Tensor:
    """Fake logits of the previous head, the size of the selected map."""
    first = inputs[head.in_index] if isinstance(head.in_index, int) else \
        inputs[head.in_index[0]]
    return torch.randn(BATCH, head.num_classes, *first.shape[2:])


def forward_args(head, inputs) -> list:
    """``forward`` arguments: the inputs, and ``prev_output`` for cascade
    heads."""
    if isinstance(head, BaseCascadeDecodeHead):
        return [inputs, _prev_output(head, inputs)]
    return [inputs]


def _samples(head_type: str, size: int = 32) -> List[SegDataSample]:
    gt = CASES[head_type].gt
    samples = []
    for _ in range(BATCH):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, NUM_CLASSES, (1, size, size)))
        if gt == 'edge':
            sample.gt_edge_map = PixelData(
                data=torch.randint(0, 2, (1, size, size)))
        if gt == 'depth':
            sample.gt_depth_map = PixelData(
                data=torch.rand(1, size, size) + 0.1)
        sample.set_metainfo(dict(img_shape=(size, size),
                                 pad_shape=(size, size)))
        samples.append(sample)
    return samples


def _tensors(output) -> List[Tensor]:
    if isinstance(output, Tensor):
        return [output]
    return [t for item in output for t in _tensors(item)]


def _randomise(head) -> None:
    """Non-trivial weights and batch-norm statistics."""
    with torch.no_grad():
        for param in head.parameters():
            param.add_(torch.randn_like(param) * 0.1)
        for name, buffer in head.named_buffers():
            if name.endswith('running_mean'):
                buffer.normal_(0, 0.1)
            elif name.endswith('running_var'):
                buffer.uniform_(0.5, 1.5)


def _eval_outputs(head, args) -> List[Tensor]:
    torch.manual_seed(1)  # LightHamHead draws random bases in forward
    with torch.no_grad():
        return _tensors(head(*args))


def test_every_registered_head_is_covered_or_skipped():
    registered = set(decode_head_types())
    assert not set(CASES) & set(SKIPPED)
    assert registered == set(CASES) | set(SKIPPED), (
        'not covered: {}; covered but not registered: {}'.format(
            sorted(registered - set(CASES) - set(SKIPPED)),
            sorted((set(CASES) | set(SKIPPED)) - registered)))


@pytest.mark.parametrize('head_type', COMPILED_OPS)
def test_skipped_heads_need_compiled_ops(head_type):
    if compiled_ops_available():
        pytest.skip('compiled mmcv ops are installed')
    with pytest.raises(RuntimeError, match='mmcv-full'):
        MODELS.build(dict(type=head_type, in_channels=16, channels=8,
                          num_classes=NUM_CLASSES, mask_size=(4, 4)))


@pytest.mark.parametrize('head_type', ALL_HEADS)
def test_one_expert_equals_the_stock_head(head_type):
    torch.manual_seed(0)
    stock = build_head(head_type)
    _randomise(stock)
    torch.manual_seed(0)
    moe = build_head(head_type, dict(num_experts=1, top_k=1,
                                     expert_init='copy', init_noise=0.0))
    result = moe.load_state_dict(stock.state_dict(), strict=False)
    target = moe.moe_target
    assert isinstance(moe.get_submodule(target), PatchConvMoE)
    assert not result.unexpected_keys
    assert all(k.startswith(target + '.gate.') for k in result.missing_keys)
    stock.eval()
    moe.eval()
    inputs = head_inputs(head_type)
    args = forward_args(stock, inputs)
    expected = _eval_outputs(stock, args)
    got = _eval_outputs(moe, args)
    assert len(got) == len(expected)
    for out, ref in zip(got, expected):
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    # The layer is on the output's path: other expert weights, other output.
    with torch.no_grad():
        for param in moe.get_submodule(target).experts[0].parameters():
            param.add_(1.0)
    changed = _eval_outputs(moe, args)
    assert any(not torch.allclose(out, ref, atol=1e-3)
               for out, ref in zip(changed, expected))


def _loss_args(head, head_type: str) -> list:
    inputs = head_inputs(head_type, train=True)
    args = forward_args(head, inputs)
    return args + [_samples(head_type), dict()]


def _total(losses: Dict[str, object]) -> Tensor:
    total = 0
    for key, value in losses.items():
        if 'loss' in key:
            total = total + sum(_tensors(value))
    return total


@pytest.mark.parametrize('head_type', ALL_HEADS)
def test_four_experts_train(head_type):
    head = build_head(
        head_type,
        dict(num_experts=4, top_k=2, grid=(3, 3),
             balance_loss=dict(type='MoESwitchLoss', loss_weight=0.01)))
    head.init_weights()
    head.train()
    layer = head.get_submodule(head.moe_target)
    losses = head.loss(*_loss_args(head, head_type))
    assert 'loss_moe_switch' in losses
    assert 0 <= losses['moe_usage_entropy'] <= 1
    _total(losses).backward()
    for name, param in head.named_parameters():
        if param.grad is not None:
            assert torch.isfinite(param.grad).all(), name
    gate = [p.grad for p in layer.gate.parameters() if p.grad is not None]
    assert gate and any(g.abs().sum() > 0 for g in gate)
    reached = [
        i for i, expert in enumerate(layer.experts)
        if any(p.grad is not None and p.grad.abs().sum() > 0
               for p in expert.parameters())
    ]
    assert len(reached) >= 2, reached
