"""The stock model behind a MoE config (moe_seg_plugin.models.stock)."""
import copy
import pathlib

import pytest
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from moe_seg_plugin.engine import load_config
from moe_seg_plugin.models.stock import (count_moe_wrappers, stock_config,
                                         stock_model_config)

ROOT = pathlib.Path(__file__).resolve().parents[2]
MOE_CONFIGS = sorted(ROOT.glob('configs/*/patchmoe_*cityscapes-512x1024.py'))
ERFNET = 'erfnet/erfnet_fcn_4xb4-160k_cityscapes-512x1024.py'
ENET = 'enet/enet_4xb4-160k_cityscapes-512x1024.py'
#: (ablation config, the stock config it inherits): a PatchMoESegmentor
#: with two stacked layers, and a PatchMoEHead with a shared expert.
ABLATIONS = [
    ('placement/patchmoe-stacked_erfnet_fcn_4xb4-160k_cityscapes-512x1024.py',
     ERFNET),
    ('shared_experts/patchmoe-shared1_enet_4xb4-160k_cityscapes-512x1024.py',
     ENET),
]


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _shapes(model_cfg) -> dict:
    model = MODELS.build(copy.deepcopy(model_cfg))
    return {key: tuple(value.shape)
            for key, value in model.state_dict().items()}


def test_every_architecture_has_a_moe_config():
    folders = {path.parent.name for path in MOE_CONFIGS}
    assert folders == {'deeplabv3plus', 'pspnet', 'lraspp', 'unet', 'erfnet',
                       'enet', 'convnext'}


@pytest.mark.parametrize('moe_path', MOE_CONFIGS, ids=lambda p: p.name)
def test_derived_stock_model_is_the_baseline_beside_it(
        moe_path, skip_without_mmpretrain_extra):
    skip_without_mmpretrain_extra(moe_path)
    baseline_path = moe_path.with_name(moe_path.name[len('patchmoe_'):])
    assert baseline_path.is_file(), f'no baseline beside {moe_path.name}'
    moe = load_config(str(moe_path))
    baseline = load_config(str(baseline_path))
    assert count_moe_wrappers(moe.model) == 1
    derived = stock_model_config(moe.model)
    assert count_moe_wrappers(derived) == 0
    assert derived.to_dict() == baseline.model.to_dict()
    assert _shapes(derived) == _shapes(baseline.model)
    assert moe.model.decode_head.type == 'PatchMoEHead'  # input untouched


@pytest.mark.parametrize('name,base', ABLATIONS)
def test_ablation_configs_derive_to_their_base(name, base):
    moe = load_config(str(ROOT / 'configs/ablations' / name))
    stock = stock_config(moe)
    baseline = load_config(str(ROOT / 'configs' / base))
    assert stock.model.to_dict() == baseline.model.to_dict()
    assert _shapes(stock.model) == _shapes(baseline.model)
    assert stock.train_dataloader == moe.train_dataloader


def test_nested_wrappers_are_all_removed():
    head = dict(type='FCNHead', in_channels=16, channels=8, num_classes=3)
    moe_head = dict(head, type='PatchMoEHead', head_type='FCNHead',
                    moe=dict(num_experts=4))
    model = dict(
        type='PatchMoESegmentor', segmentor_type='CascadeEncoderDecoder',
        moe_layers=[dict(target='backbone.conv')],
        decode_head=[dict(moe_head), dict(head, type='mmseg.PatchMoEHead',
                                          head_type='PSPHead')],
        auxiliary_head=[dict(moe_head), dict(head)])
    original = copy.deepcopy(model)
    stock = stock_model_config(model)
    assert model == original
    assert count_moe_wrappers(model) == 4
    assert stock == dict(
        type='CascadeEncoderDecoder',
        decode_head=[dict(head), dict(head, type='PSPHead')],
        auxiliary_head=[dict(head), dict(head)])


def test_segmentor_type_defaults_to_encoder_decoder():
    stock = stock_model_config(
        dict(type='PatchMoESegmentor', moe_layers=[dict(target='x')]))
    assert stock == dict(type='EncoderDecoder')


def test_stock_config_is_returned_unchanged():
    model = dict(type='EncoderDecoder', decode_head=dict(type='PSPHead'))
    assert stock_model_config(model) == model
    assert count_moe_wrappers(model) == 0


def test_moe_head_without_head_type_is_an_error():
    with pytest.raises(ValueError, match='head_type'):
        stock_model_config(dict(decode_head=dict(type='PatchMoEHead')))
