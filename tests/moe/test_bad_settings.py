"""Bad settings raise ValueError naming the key and what is allowed."""
import re

import pytest
import torch
from torch import nn

from moe_seg_plugin.moe import PatchConvMoE


def _conv():
    return nn.Conv2d(4, 4, 3, padding=1)


@pytest.mark.parametrize('kwargs,match', [
    (dict(num_experts=4, top_k=5), r'top_k must be an int from 1 to '
     r'num_experts \(4\)'),
    (dict(num_experts=0, top_k=1), 'num_experts must be an int >= 1'),
    (dict(top_k=0), 'top_k must be an int from 1'),
    (dict(grid=(3, 3), patch_size=8), 'give exactly one of them'),
    (dict(grid=None), 'give exactly one of them'),
    (dict(grid=(0, 3)), 'grid must be a positive int'),
    (dict(grid=(3, 3, 3)), 'grid must be a positive int'),
    (dict(grid=None, patch_size=-4), 'patch_size must be a positive int'),
    (dict(gate=dict(type='NoSuchGate')), r"gate: unknown gate type "
     r"'NoSuchGate'; allowed: \['ConvGAPGate', 'DoubleConvGAPGate', "
     r"'GAPLinearGate'\]"),
    (dict(gate=dict(kernel_size=3)), 'gate must be a dict with a "type"'),
    (dict(gate=dict(type='ConvGAPGate', kernel_size=2)),
     'gate.kernel_size must be a positive odd'),
    (dict(gate=dict(type='GAPLinearGate', bad_arg=1)),
     r"gate: unknown key 'bad_arg' for GAPLinearGate; allowed: \[\]"),
    (dict(balance_loss=dict(type='NoSuchLoss')),
     "balance_loss: unknown balancing loss type 'NoSuchLoss'; allowed: "
     r"\['MoEEntropyLoss', 'MoEImportanceLoss', 'MoELoadLoss', "),
    (dict(balance_loss=[dict(type='MoESwitchLoss'), 'Nope']),
     "unknown balancing loss type 'Nope'"),
    (dict(balance_loss=dict(type='MoELoadLoss')), 'set noisy_gating=True'),
    (dict(noisy_gating=True, noise_std=0), 'noise_std must be > 0'),
    (dict(num_shared_experts=-1), 'num_shared_experts must be an int >= 0'),
    (dict(expert_init='zeros'), r"expert_init must be one of \('random', "
     r"'copy'\)"),
    (dict(dispatch='gathered'), r"dispatch must be one of \('auto', "
     r"'views', 'indexed'\), got 'gathered'"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PatchConvMoE(_conv(), **kwargs)


@pytest.mark.parametrize('module,match', [
    (nn.Linear(4, 4), 'module: module is a Linear, which is not conv-like'),
    (nn.Sequential(nn.Conv2d(4, 4, 3), nn.MaxPool2d(2)),
     r'module: module.1 is a MaxPool2d'),
    (nn.Conv2d(4, 4, 3, padding=1, padding_mode='reflect'),
     "padding_mode='zeros' only"),
    (nn.Sequential(nn.Conv2d(4, 4, 1), nn.GroupNorm(2, 4)),
     'module.1 is a GroupNorm'),
    (nn.Sequential(), 'empty nn.Sequential'),
    ('conv', 'module must be an nn.Module'),
])
def test_replaced_module_must_be_conv_like(module, match):
    with pytest.raises(ValueError, match=match):
        PatchConvMoE(module)


def test_conv_module_with_group_norm_is_refused():
    from mmcv.cnn import ConvModule
    conv = ConvModule(4, 8, 3, padding=1,
                      norm_cfg=dict(type='GN', num_groups=2))
    with pytest.raises(ValueError, match='uses GroupNorm'):
        PatchConvMoE(conv)


def test_grid_larger_than_feature_map_is_clipped_and_said_once(caplog):
    """A grid with more patches than the output has pixels uses one patch
    per pixel there (so any input size works), logged once per layer."""
    moe = PatchConvMoE(_conv(), grid=(4, 4)).eval()
    with caplog.at_level('WARNING', logger='moe_seg_plugin'):
        moe(torch.randn(1, 4, 4, 8))
        assert not caplog.records
        moe(torch.randn(1, 4, 3, 8))
        assert moe.last_routing.grid == (1, 3, 4)
        moe(torch.randn(1, 4, 2, 2))
        assert moe.last_routing.grid == (1, 2, 2)
    clipped = [r for r in caplog.records if 'larger than the output' in
               r.getMessage()]
    assert len(clipped) == 1
    assert '(4, 4)' in clipped[0].getMessage()


def test_wrong_input_channels():
    moe = PatchConvMoE(_conv())
    with pytest.raises(ValueError, match=r'expects input \(B, 4, H, W\)'):
        moe(torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize('value', [3, -1, '1', 1.0, True])
def test_bad_forced_expert_is_refused_when_set(value):
    moe = PatchConvMoE(_conv(), num_experts=3, top_k=1)
    with pytest.raises(ValueError, match=r'forced_expert must be None '
                       r'\(gated\) or an int from 0 to 2, got'):
        moe.forced_expert = value
    assert moe.forced_expert is None
    moe.forced_expert = 2
    assert moe.forced_expert == 2


def test_empty_batch_is_refused():
    moe = PatchConvMoE(_conv())
    with pytest.raises(ValueError, match=r'empty batch \(0 images\)'):
        moe(torch.randn(0, 4, 8, 8))


@pytest.mark.parametrize('weight', [-0.01, '0.1', None])
def test_bad_balance_loss_weight(weight):
    with pytest.raises(ValueError, match='loss_weight must be a number >= 0 '
                       r'\(a negative weight rewards collapse'):
        PatchConvMoE(_conv(),
                     balance_loss=dict(type='MoESwitchLoss',
                                       loss_weight=weight))


def test_bad_weighting():
    with pytest.raises(ValueError, match=r"weighting must be one of "
                       r"\('renormalized', 'gate_prob', 'straight_through'\)"):
        PatchConvMoE(_conv(), weighting='softmax')


@pytest.mark.parametrize('kwargs,match', [
    (dict(gate=dict(type='DoubleConvGAPGate', hiden_channels=8)),
     r"^gate: unknown key 'hiden_channels' for DoubleConvGAPGate \(did you "
     r"mean 'hidden_channels'\?\); allowed: \['hidden_channels', "
     r"'kernel_size', 'with_act'\]$"),
    (dict(gate=dict(type='ConvGAPGate', kernel=3)),
     r"^gate: unknown key 'kernel' for ConvGAPGate \(did you mean "
     r"'kernel_size'\?\); allowed: \['kernel_size'\]$"),
    (dict(balance_loss=[dict(type='MoESwitchLoss'),
                        dict(type='MoEZLoss', los_weight=0.1)]),
     r"^balance_loss: unknown key 'los_weight' for MoEZLoss \(did you mean "
     r"'loss_weight'\?\); allowed: \['loss_name', 'loss_weight'\]$"),
    (dict(gride=(2, 2)),
     r"^unknown key 'gride' for PatchConvMoE \(did you mean 'grid'\?\); "
     r"allowed: \['balance_loss', .*'grid', .*'weighting'\]$"),
    (dict(top_k=1, experts=2, zzz=1),
     r"^unknown key 'experts' for PatchConvMoE \(did you mean "
     r"'num_experts'\?\) \(also unknown: \['zzz'\]\); allowed: "),
])
def test_unknown_keyword_names_the_allowed_ones(kwargs, match):
    """An unknown keyword of a gate, a balancing loss or the layer itself
    names the owner, the key, its nearest allowed key and all of them; a
    TypeError as Python's own, and a ValueError as the other settings."""
    with pytest.raises(TypeError, match=match) as info:
        PatchConvMoE(_conv(), **kwargs)
    assert isinstance(info.value, ValueError)


def test_layer_keeps_its_signature_for_introspection():
    import inspect
    params = list(inspect.signature(PatchConvMoE).parameters)
    assert params[:3] == ['module', 'num_experts', 'top_k']
    assert 'kwargs' not in params


@pytest.mark.parametrize('x_dtype,layer_dtype,cast', [
    (torch.float64, torch.float32, 'layer.double()'),
    (torch.float32, torch.float64, 'layer.float()'),
    (torch.bfloat16, torch.float32, 'layer.bfloat16()'),
])
def test_input_dtype_other_than_the_layers_is_refused_at_entry(
        x_dtype, layer_dtype, cast):
    moe = PatchConvMoE(_conv(), num_experts=2).to(layer_dtype)
    x = torch.randn(1, 4, 8, 8, dtype=x_dtype)
    with pytest.raises(TypeError, match=(
            rf"^PatchConvMoE \(replacing Conv2d\): input dtype {x_dtype} does "
            rf"not match the layer's parameter dtype {layer_dtype}; cast the "
            rf"input to the layer's \(x.to\({layer_dtype}\)\), or the layer "
            rf"to the input's \({re.escape(cast)}\)$")):
        moe(x)
    assert moe(x.to(layer_dtype)).dtype == layer_dtype
    cast_layer = getattr(moe, cast.split('.')[1][:-2])()
    assert cast_layer(x).dtype == x_dtype


def test_float64_input_is_refused_under_autocast_too():
    """Autocast leaves float64 as it is, so it would fail inside anyway."""
    moe = PatchConvMoE(_conv(), num_experts=2)
    with torch.autocast('cpu', dtype=torch.bfloat16), pytest.raises(
            TypeError, match='input dtype torch.float64 does not match'):
        moe(torch.randn(1, 4, 8, 8, dtype=torch.float64))


def test_dtype_check_compiles_without_graph_breaks():
    """The check reads tensor metadata only: one graph with it, under
    autocast too; a mismatch still raises it."""
    moe = PatchConvMoE(_conv(), num_experts=2, capacity_factor=2.0).eval()
    compiled = torch.compile(moe, backend='eager', fullgraph=True)
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), moe(x))
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert compiled(x.bfloat16()).dtype == torch.bfloat16
        with pytest.raises(TypeError, match='input dtype torch.float64'):
            torch.compile(moe, backend='eager')(x.double())


def test_patch_size_larger_than_feature_map_is_clipped_and_said_once(caplog):
    """As a grid too large for the map: one patch of the whole output along
    that axis (so any input size works), logged once per layer."""
    moe = PatchConvMoE(_conv(), grid=None, patch_size=(4, 8)).eval()
    with caplog.at_level('WARNING', logger='moe_seg_plugin'):
        moe(torch.randn(1, 4, 8, 8))
        assert not caplog.records
        moe(torch.randn(1, 4, 8, 6))
        assert moe.last_routing.grid == (1, 2, 1)
        moe(torch.randn(1, 4, 2, 2))
    clipped = [r for r in caplog.records if 'larger than the output' in
               r.getMessage()]
    assert len(clipped) == 1
    assert clipped[0].getMessage().startswith(
        'PatchConvMoE: patch_size (4, 8) is larger than the output (8, 6) of '
        'the replaced layer for a 8x6 input; this input uses a (2, 1) grid')
