"""PatchMoESegmentor: MoE layers at any dotted path, stacked, with keys."""
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from moe_seg_plugin.moe import PatchConvMoE

from enet_cases import HEAD, street_batch

STOCK = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[0, 0, 0],
                           std=[255, 255, 255], size_divisor=8),
    backbone=dict(type='ENet'),
    decode_head=HEAD,
    train_cfg=ConfigDict(),
    test_cfg=ConfigDict(mode='whole'))
BACKBONE = 'backbone.stage3.7.ext'
DECODER = 'decode_head.bottleneck.ext'


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _moe(layers, **extra):
    return MODELS.build(dict(STOCK, type='PatchMoESegmentor',
                             moe_layers=layers, **extra))


def _loss(model):
    images, samples = street_batch(count=2, size=(64, 96))
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples),
                                   True)
    model.train()
    return model(**data, mode='loss')


def test_two_stacked_layers_report_their_own_keys():
    stock = MODELS.build(STOCK)
    model = _moe([
        dict(target=BACKBONE, num_experts=4,
             balance_loss=dict(type='MoESwitchLoss')),
        dict(target=DECODER, num_experts=3, grid=(2, 2),
             balance_loss=dict(type='MoEImportanceLoss')),
    ])
    assert isinstance(model, type(stock))
    assert isinstance(model.get_submodule(BACKBONE), PatchConvMoE)
    assert model.get_submodule(DECODER).num_experts == 3

    def untouched(keys):
        return {k for k in keys
                if not k.startswith((BACKBONE + '.', DECODER + '.'))}

    assert untouched(model.state_dict()) == untouched(stock.state_dict())
    losses = _loss(model)
    for key in (f'loss_moe_switch.{BACKBONE}',
                f'loss_moe_importance.{DECODER}',
                f'moe_usage_entropy.{BACKBONE}',
                f'moe_dominant_share.{DECODER}'):
        assert key in losses, sorted(losses)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    gate = model.get_submodule(BACKBONE).gate
    assert gate.convs[0].weight.grad is not None


def test_layers_in_a_patch_moe_head_are_reported_once():
    model = _moe([dict(target=BACKBONE, num_experts=2)],
                 decode_head=dict(HEAD, type='PatchMoEHead',
                                  head_type='ENetHead',
                                  moe=dict(num_experts=2)))
    losses = _loss(model)
    assert 'decode.moe_usage_entropy' in losses
    assert f'moe_usage_entropy.{BACKBONE}' in losses
    assert not any(k.endswith('.' + DECODER) for k in losses)


@pytest.mark.parametrize('layers,match', [
    ([dict(target='backbone.stage3.7.extt')],
     r"model.moe_layers\[0\].target: no module at 'backbone.stage3.7.extt'"
     r" in PatchMoEEncoderDecoder; nearest conv-like paths: "
     r"\['backbone.stage3.7.ext'"),
    ([dict(target='decode_head.conv_seg')],
     r"'decode_head.conv_seg' is a ConvTranspose2d, not a conv-like"),
    ([dict(num_experts=2)], r'model.moe_layers\[0\].target: missing'),
    ([], 'model.moe_layers: give at least one'),
])
def test_bad_moe_layers(layers, match):
    with pytest.raises(ValueError, match=match):
        _moe(layers)


def test_unknown_segmentor_type():
    with pytest.raises(ValueError, match="model.segmentor_type: 'Nope' is "
                       "not a registered segmentor; allowed: "):
        _moe([dict(target=BACKBONE)], segmentor_type='Nope')


FCN_HEAD = dict(type='FCNHead', in_channels=16, channels=16, num_convs=1,
                concat_input=False, num_classes=19)


@pytest.mark.parametrize('target,extra', [
    # The head's init_cfg overrides its classifier with Normal(std=0.01).
    ('decode_head.conv_seg', dict(decode_head=FCN_HEAD)),
    # A backbone init inside an nn.Sequential (no init_weights of its own).
    (BACKBONE, dict(backbone=dict(
        type='ENet', init_cfg=dict(type='Constant', val=0.5,
                                   layer=['Conv2d', 'BatchNorm2d'])))),
])
def test_gates_keep_their_own_init_wherever_placed(target, extra):
    model = _moe([dict(target=target, num_experts=3)], **extra)
    model.init_weights()
    gate = model.get_submodule(target).gate
    norms = [m for m in gate.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms
    for norm in norms:
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))
        assert torch.equal(norm.bias, torch.zeros_like(norm.bias))
    convs = [m for m in gate.modules() if isinstance(m, torch.nn.Conv2d)]
    for conv in convs:
        # Conv2d's own init (kaiming uniform), not Normal(0.01) / 0.5.
        assert conv.weight.std() > 0.02
        assert not torch.all(conv.weight == 0.5)
