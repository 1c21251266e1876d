"""ENet as an MMSeg backbone + head: size, shapes, MoE placement, training."""
import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from moe_seg_plugin.moe import PatchConvMoE

from enet_cases import HEAD, street_batch  # noqa: I100


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _segmentor(head=HEAD):
    return MODELS.build(
        dict(type='EncoderDecoder',
             data_preprocessor=dict(type='SegDataPreProcessor',
                                    mean=[123.675, 116.28, 103.53],
                                    std=[58.395, 57.12, 57.375],
                                    bgr_to_rgb=False, size_divisor=8),
             backbone=dict(type='ENet'), decode_head=head,
             train_cfg=ConfigDict(), test_cfg=ConfigDict(mode='whole')))


def test_parameter_count_close_to_published():
    # Paszke et al. 2016 report about 0.37 M parameters.
    count = sum(p.numel() for p in _segmentor().parameters())
    assert abs(count - 0.37e6) / 0.37e6 < 0.05, count


@pytest.mark.parametrize('size', [(64, 128), (75, 131), (33, 47)])
def test_predictions_have_the_input_size(size):
    model = _segmentor().eval()
    with torch.no_grad():
        results = model.predict(torch.randn(1, 3, *size))
    assert results[0].pred_sem_seg.shape == size


def test_moe_at_the_decoders_last_block_equals_dense_with_one_expert():
    head = MODELS.build(dict(HEAD)).eval()
    moe = MODELS.build(dict(HEAD, type='PatchMoEHead', head_type='ENetHead',
                            moe=dict(num_experts=1, top_k=1,
                                     expert_init='copy', init_noise=0.0)))
    assert moe.moe_target == 'bottleneck.ext'
    assert isinstance(moe.bottleneck.ext, PatchConvMoE)
    moe.bottleneck.ext.experts[0].load_state_dict(
        head.bottleneck.ext.state_dict())
    moe.load_state_dict(head.state_dict(), strict=False)
    moe.eval()
    x = [torch.randn(2, 16, 37, 53)]
    with torch.no_grad():
        torch.testing.assert_close(moe(x), head(x), atol=1e-5, rtol=1e-5)


def test_a_few_training_steps_lower_the_loss():
    torch.manual_seed(0)
    model = _segmentor(dict(HEAD, type='PatchMoEHead', head_type='ENetHead',
                            moe=dict(num_experts=4, balance_loss=dict(
                                type='MoESwitchLoss', loss_weight=0.01))))
    model.train()
    images, samples = street_batch()
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples),
                                   True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(12):
        terms = model(**data, mode='loss')
        loss = sum(v for k, v in terms.items() if 'loss' in k)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert 'decode.loss_moe_switch' in terms
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])


@pytest.mark.parametrize('size', [(8, 8), (9, 11), (7, 6)])
def test_deterministic_unpooling_equals_max_unpool2d(size):
    from moe_seg_plugin.models.backbones.enet_blocks import unpool_2x2
    pooled, indices = torch.nn.functional.max_pool2d(
        torch.randn(2, 3, *size), 2, 2, return_indices=True)
    stock = pooled.clone().requires_grad_()
    ours = pooled.clone().requires_grad_()
    expected = torch.nn.functional.max_unpool2d(stock, indices, 2, 2,
                                                output_size=size)
    result = unpool_2x2(ours, indices, size)
    grad = torch.randn_like(expected)
    expected.backward(grad)
    result.backward(grad)
    assert torch.equal(result, expected)
    assert torch.equal(ours.grad, stock.grad)


@pytest.fixture
def deterministic():
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(False)


def test_a_training_step_with_deterministic_algorithms(deterministic):
    # MMEngine's randomness.deterministic=True; max_unpool2d has no
    # deterministic kernel, so ENet unpools by a gather instead.
    model = _segmentor(dict(HEAD, type='PatchMoEHead', head_type='ENetHead',
                            moe=dict(num_experts=4)))
    model.train()
    images, samples = street_batch(count=2, size=(33, 47))
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples),
                                   True)
    terms = model(**data, mode='loss')
    sum(v for k, v in terms.items() if 'loss' in k).backward()
    grads = [p.grad for p in model.backbone.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_both_unpooling_paths_give_the_same_backbone_output():
    backbone = MODELS.build(dict(type='ENet')).eval()
    x = torch.randn(1, 3, 45, 61)
    with torch.no_grad():
        stock = backbone(x)[0]
        torch.use_deterministic_algorithms(True)
        try:
            ours = backbone(x)[0]
        finally:
            torch.use_deterministic_algorithms(False)
    assert torch.equal(ours, stock)
