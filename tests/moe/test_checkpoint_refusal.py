"""A MoE layer refuses a checkpoint whose expert count or shapes do not fit
it (MMEngine's non-strict loading would only warn and train on), naming
the layer and both counts or shapes; a dense checkpoint still upcycles."""
import pytest
import torch
from mmengine.runner.checkpoint import load_state_dict
from torch import nn

from moe_seg_plugin.moe import PatchConvMoE


class _Model(nn.Module):

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(3, 4, 1), layer)


def _moe(num_experts=4, shared=0, channels=4, **kwargs) -> _Model:
    return _Model(
        PatchConvMoE(nn.Conv2d(4, channels, 3, padding=1),
                     num_experts=num_experts, top_k=1,
                     num_shared_experts=shared, **kwargs))


@pytest.mark.parametrize('loader', ['torch', 'mmengine'])
def test_other_expert_count_is_refused(loader):
    checkpoint = _moe(num_experts=8).state_dict()
    model = _moe(num_experts=4)
    with pytest.raises(ValueError,
                       match=r"PatchConvMoE layer 'head.1' has 4 experts, "
                       r'the checkpoint has 8; build the model with '
                       r'num_experts=8'):
        if loader == 'torch':
            model.load_state_dict(checkpoint, strict=False)
        else:
            load_state_dict(model, checkpoint, strict=False)


def test_other_shared_expert_count_is_refused():
    checkpoint = _moe(shared=0).state_dict()
    with pytest.raises(ValueError, match=r"'head.1' has 1 shared experts, "
                       r'the checkpoint has 0; build the model with '
                       r'num_shared_experts=0'):
        load_state_dict(_moe(shared=1), checkpoint, strict=False)


def test_other_shapes_are_refused():
    checkpoint = _moe(channels=6).state_dict()
    with pytest.raises(ValueError,
                       match=r"'head.1': entry 'head.1.experts.0.weight' has "
                       r'shape \(6, 4, 3, 3\), the layer needs \(4, 4, 3, '
                       r'3\); the checkpoint is of another model'):
        load_state_dict(_moe(channels=4), checkpoint, strict=False)


def test_dense_checkpoint_of_other_shape_is_refused():
    dense = _Model(nn.Conv2d(4, 6, 3, padding=1)).state_dict()
    with pytest.raises(ValueError, match=r"entry 'head.1.weight' has shape "
                       r'\(6, 4, 3, 3\), the layer needs \(4, 4, 3, 3\)'):
        load_state_dict(_moe(expert_init='copy'), dense, strict=False)


@pytest.mark.parametrize('num_experts', [1, 4, 8])
def test_dense_checkpoint_still_upcycles(num_experts):
    dense = _Model(nn.Conv2d(4, 4, 3, padding=1)).state_dict()
    model = _moe(num_experts=num_experts, expert_init='copy', init_noise=0)
    load_state_dict(model, dense, strict=False)
    for expert in model.head[1].experts:
        torch.testing.assert_close(expert.weight, dense['head.1.weight'])


def test_matching_checkpoint_loads_exactly():
    source = _moe()
    model = _moe()
    model.load_state_dict(source.state_dict())
    for a, b in zip(source.parameters(), model.parameters()):
        torch.testing.assert_close(a, b)
