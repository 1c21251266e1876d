"""The floor benchmark: routing spread over every expert only inside the
block, the dense layer timed on the input it gets in the stock model, and
floor / ratio / excess computed from the timed medians."""
import pytest
import torch

from moe_seg_plugin.engine import load_config
from moe_seg_plugin.evaluation.floor import dense_inputs, measure_floor
from moe_seg_plugin.evaluation.spread import spread_routing
from moe_seg_plugin.evaluation.flops import inference_model
from moe_seg_plugin.models.injection import moe_layers

MOE = 'configs/erfnet/patchmoe_erfnet_fcn_1xb4-1k_street-cityscapes-256x256.py'
STOCK = 'configs/erfnet/erfnet_fcn_1xb4-1k_street-cityscapes-256x256.py'


@pytest.fixture(scope='module')
def pair():
    torch.manual_seed(0)
    return (inference_model(load_config(MOE)),
            inference_model(load_config(STOCK)))


def test_spread_routing_busies_every_expert_inside_the_block_only(pair):
    moe, _ = pair
    (name, layer), = moe_layers(moe).items()
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad(), spread_routing(moe):
        moe(x, mode='tensor')
        spread = layer.last_routing.experts.unique().numel()
    assert spread == layer.num_experts
    assert not layer.gate._forward_hooks


def test_dense_inputs_are_what_the_replaced_layer_gets(pair):
    moe, stock = pair
    (path, layer), = moe_layers(moe).items()
    inputs = dense_inputs(stock, [path], torch.randn(1, 3, 64, 128))
    assert inputs[path].shape[1] == layer.in_channels
    assert not stock.get_submodule(path)._forward_pre_hooks


@pytest.mark.parametrize('train', [False, True])
def test_floor_ratio_and_excess_from_the_medians(pair, train):
    moe, stock = pair
    (path, layer), = moe_layers(moe).items()
    result = measure_floor(moe, stock, torch.randn(1, 3, 64, 128),
                           train=train, warmup=0, repeats=1)
    ms = {name: figures['median_ms']
          for name, figures in result['latency'].items()}
    share = ms[f'dense:{path}'] / ms['stock']
    assert result['shares'] == {path: share}
    assert result['floor'] == 1 + (layer.top_k - 1) * share
    assert result['ratio'] == ms['moe'] / ms['stock']
    assert result['excess'] == result['ratio'] - result['floor']
