"""The core is registered in MMSeg's MODELS and depends on torch only."""
import ast
import pathlib

import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from torch import nn

import moe_seg_plugin

CORE = pathlib.Path(moe_seg_plugin.__file__).parent / 'moe'


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')


@pytest.mark.parametrize('name', [
    'PatchConvMoE', 'GAPLinearGate', 'ConvGAPGate', 'DoubleConvGAPGate',
    'MoEImportanceLoss', 'MoELoadLoss', 'MoESwitchLoss', 'MoEEntropyLoss',
    'MoEZLoss'
])
def test_registered_in_mmseg_models(name):
    assert MODELS.get(name) is not None


def test_build_from_mmseg_registry():
    conv = nn.Conv2d(3, 5, 3, padding=1)
    moe = MODELS.build(
        dict(type='PatchConvMoE', module=conv, num_experts=4,
             balance_loss=dict(type='MoESwitchLoss', loss_weight=0.1)))
    assert moe(torch.randn(2, 3, 12, 12)).shape == (2, 5, 12, 12)
    assert set(moe.balance_loss()) == {'loss_moe_switch'}


def test_gate_registered_by_a_user_is_found():

    @MODELS.register_module()
    class _UserTestGate(nn.Module):

        def __init__(self, in_channels, num_experts):
            super().__init__()
            self.fc = nn.Linear(in_channels, num_experts)

        def forward(self, x, pool):
            return self.fc(pool(x))

    moe = MODELS.build(
        dict(type='PatchConvMoE', module=nn.Conv2d(3, 3, 1),
             gate=dict(type='_UserTestGate'), num_experts=2, top_k=1))
    assert isinstance(moe.gate, _UserTestGate)
    moe(torch.randn(1, 3, 6, 6))


def test_a_gate_with_one_row_per_image_is_refused_clearly():

    @MODELS.register_module()
    class _PerImageGate(nn.Module):

        def __init__(self, in_channels, num_experts):
            super().__init__()
            self.fc = nn.Linear(in_channels, num_experts)

        def forward(self, x, pool):
            return self.fc(x.mean((2, 3)))

    moe = MODELS.build(
        dict(type='PatchConvMoE', module=nn.Conv2d(3, 3, 1),
             gate=dict(type='_PerImageGate'), num_experts=2, top_k=1))
    with pytest.raises(ValueError, match=r'gate _PerImageGate returned '
                       r'logits of shape \(2, 2\); expected one row per '
                       r'patch, \(18, 2\)'):
        moe(torch.randn(2, 3, 6, 6))


def _imported_modules(path: pathlib.Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split('.')[0]


def test_core_imports_torch_and_stdlib_only():
    allowed = {
        'torch', 'typing', 'dataclasses', 'difflib', 'functools', 'math',
        'copy', 'inspect', 'logging', 're', 'sys'
    }
    files = sorted(CORE.glob('*.py'))
    assert len(files) >= 5
    for path in files:
        assert set(_imported_modules(path)) <= allowed, path.name
