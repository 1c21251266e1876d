"""check_checkpoint_fits: a checkpoint of another architecture or config is
refused with one line naming the file, the counts and the first offending
keys; partial, other-classes and stock dense checkpoints still load."""
import pathlib
from collections import OrderedDict
from functools import lru_cache
from types import SimpleNamespace

import pytest
import torch

from moe_seg_plugin.engine import SetupError, load_config
from moe_seg_plugin.engine.checkpoint_fit import (CheckpointFit,
                                                  CheckpointFitHook,
                                                  check_checkpoint_fits,
                                                  load_fitting_checkpoint)

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = {
    'erfnet_moe': 'erfnet/patchmoe_erfnet_fcn_1xb4-1k_street-cityscapes-'
                  '256x256.py',
    'erfnet': 'erfnet/erfnet_fcn_1xb4-1k_street-cityscapes-256x256.py',
    'enet_moe': 'enet/patchmoe_enet_1xb4-1k_street-cityscapes-256x256.py',
    'deeplab_r18_moe': 'deeplabv3plus/patchmoe_deeplabv3plus_r18-d8_1xb4-'
                       '1k_street-cityscapes-256x256.py',
    'deeplab_r18': 'deeplabv3plus/deeplabv3plus_r18-d8_1xb4-1k_street-'
                   'cityscapes-256x256.py',
    'deeplab_r50': 'deeplabv3plus/deeplabv3plus_r50-d8_1xb4-1k_street-'
                   'cityscapes-256x256.py',
}
FILE = 'work_dirs/other/iter_1000.pth'
HINT = 'Likely a checkpoint of another model or config: check CHECKPOINT / ' \
    'load_from'


@lru_cache(maxsize=None)
def _built(name: str, options: tuple = ()):
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = load_config(str(ROOT / 'configs' / CONFIGS[name]), dict(options))
    return MODELS.build(cfg.model).eval()


def model(name: str, **options):
    """A freshly built model of one of the street configs (built once)."""
    return _built(name, tuple(sorted(options.items())))


def checkpoint(name: str, **options) -> dict:
    """A checkpoint of that model, as MMEngine saves one."""
    return {'state_dict': model(name, **options).state_dict(), 'meta': {}}


def refusal(target, saved) -> str:
    with pytest.raises(SetupError) as info:
        check_checkpoint_fits(target, saved, FILE)
    message = str(info.value)
    assert '\n' not in message
    return message


# (a) Another architecture or config: refused.
def test_enet_checkpoint_in_erfnet_is_refused_naming_counts_and_keys():
    message = refusal(model('erfnet_moe'), checkpoint('enet_moe'))
    assert message == (
        f"checkpoint '{FILE}' does not fit the model (fewer than 50% of its "
        'tensors fit): 1 of its 740 tensors fit, 1 have another shape, 738 '
        'are unknown to the model (which has 399); other shape: '
        "'decode_head.conv_seg.weight' (16, 19, 3, 3) in the checkpoint, "
        '(19, 128, 1, 1) in the model; unknown: '
        "'backbone.initial.conv.weight', 'backbone.initial.bn.weight', "
        f"'backbone.initial.bn.bias' (+735 more). {HINT}")


@pytest.mark.parametrize('saved, target', [
    ('erfnet_moe', 'deeplab_r18_moe'),
    ('deeplab_r18_moe', 'erfnet_moe'),
    ('erfnet', 'enet_moe'),
    ('deeplab_r18', 'erfnet'),
])
def test_other_architectures_are_refused(saved, target):
    message = refusal(model(target), checkpoint(saved))
    assert message.startswith(f"checkpoint '{FILE}' does not fit the model "
                              '(fewer than 50% of its tensors fit)')
    assert message.endswith(HINT)


def test_another_depth_of_the_same_architecture_is_refused():
    """ResNet-18 weights in ResNet-50: the names are largely the same, the
    shapes are not."""
    message = refusal(model('deeplab_r50'), checkpoint('deeplab_r18'))
    assert message.startswith(
        f"checkpoint '{FILE}' does not fit the model (more than 25% of its "
        'tensors have another shape): 126 of its 226 tensors fit, 100 have '
        'another shape, 0 are unknown to the model (which has 424); other '
        "shape: 'backbone.layer1.0.conv1.weight' (64, 64, 3, 3) in the "
        'checkpoint, (64, 64, 1, 1) in the model, ')
    assert '(+97 more)' in message and message.endswith(HINT)


def test_a_checkpoint_of_nothing_that_fits_is_refused():
    """Keys without the model's prefixes (a torchvision-style backbone
    file given as load_from) would load nothing at all."""
    bare = {key.split('.', 1)[1]: value
            for key, value in checkpoint('erfnet')['state_dict'].items()}
    assert 'fewer than 50% of its tensors fit): 0 of its' in refusal(
        model('erfnet'), bare)
    assert 'holds no tensors' in refusal(model('erfnet'),
                                         {'state_dict': {}, 'meta': {}})


# (b) Partial checkpoints: all they hold fits.
@pytest.mark.parametrize('part', ['backbone.', 'decode_head.'])
def test_backbone_or_head_only_checkpoints_load(part):
    saved = {key: value
             for key, value in checkpoint('erfnet')['state_dict'].items()
             if key.startswith(part)}
    target = model('erfnet_moe')
    check_checkpoint_fits(target, {'state_dict': saved}, FILE)
    fit = CheckpointFit(target, saved)
    assert len(fit.fitting) == len(saved) and not fit.unknown


# (c) Another number of classes: only the classifier differs.
def test_a_checkpoint_with_other_classes_loads():
    saved = checkpoint('deeplab_r18', **{
        'model.decode_head.num_classes': 5,
        'model.auxiliary_head.num_classes': 5})
    for target in (model('deeplab_r18'), model('deeplab_r18_moe')):
        check_checkpoint_fits(target, saved, FILE)
        fit = CheckpointFit(target, saved)
        assert sorted(key for key, _, _ in fit.mismatched) == [
            'auxiliary_head.conv_seg.bias', 'auxiliary_head.conv_seg.weight',
            'decode_head.conv_seg.bias', 'decode_head.conv_seg.weight']


# (d) A stock dense checkpoint in the MoE variant: the replaced module's
# weights fit the layer (it upcycles or drops them).
@pytest.mark.parametrize('stock, moe', [('erfnet', 'erfnet_moe'),
                                        ('deeplab_r18', 'deeplab_r18_moe')])
def test_a_stock_dense_checkpoint_fits_its_moe_variant(stock, moe):
    saved = checkpoint(stock)
    fit = CheckpointFit(model(moe), saved)
    assert not fit.mismatched and not fit.unknown
    assert len(fit.fitting) == fit.total == len(saved['state_dict'])
    check_checkpoint_fits(model(moe), saved, FILE)


def test_a_dense_entry_of_the_wrong_shape_counts_as_another_shape():
    saved = dict(checkpoint('erfnet')['state_dict'])
    saved['decode_head.convs.0.conv.weight'] = torch.zeros(1, 2, 3, 3)
    fit = CheckpointFit(model('erfnet_moe'), saved)
    assert fit.mismatched == [('decode_head.convs.0.conv.weight',
                               (1, 2, 3, 3), (128, 16, 3, 3))]


def test_a_dense_checkpoint_loads_and_upcycles(tmp_path):
    target = model('erfnet_moe', **{'model.decode_head.moe.expert_init':
                                    'copy'})
    path = tmp_path / 'stock.pth'
    torch.save(checkpoint('erfnet'), path)
    load_fitting_checkpoint(target, str(path))
    dense = model('erfnet').decode_head.convs[0].conv.weight
    for expert in target.decode_head.convs[0].experts:
        gap = (expert.conv.weight - dense).norm() / dense.norm()
        assert gap < 0.05  # the dense weights plus 1 % noise


def test_a_stock_checkpoint_fits_and_upcycles_into_conv_scope(tmp_path):
    """expert_scope='conv': the dense conv's entries go to the experts,
    its batch norm's to the layer's tail."""
    conv_scope = {'model.decode_head.moe.expert_scope': 'conv',
                  'model.decode_head.moe.expert_init': 'copy'}
    saved = {'state_dict': dict(checkpoint('erfnet')['state_dict'])}
    variance = torch.rand(128) + 0.5  # not the fresh tail's ones
    saved['state_dict']['decode_head.convs.0.bn.running_var'] = variance
    fit = CheckpointFit(model('erfnet_moe', **conv_scope), saved)
    assert not fit.mismatched and not fit.unknown
    assert len(fit.fitting) == fit.total
    target = model('erfnet_moe', **conv_scope)
    path = tmp_path / 'stock.pth'
    torch.save(saved, path)
    load_fitting_checkpoint(target, str(path))
    stock = model('erfnet').decode_head.convs[0]
    layer = target.decode_head.convs[0]
    for expert in layer.experts:
        gap = (expert.weight - stock.conv.weight).norm()
        assert gap < 0.05 * stock.conv.weight.norm()
    assert torch.equal(layer.tail.bn.running_var, variance)


def test_another_expert_count_is_left_to_the_layer(tmp_path):
    """The check lets it through; the layer refuses it with its own
    message."""
    saved = checkpoint('erfnet_moe', **{'model.decode_head.moe.num_experts':
                                        4})
    target = model('erfnet_moe')
    check_checkpoint_fits(target, saved, FILE)
    path = tmp_path / 'four.pth'
    torch.save(saved, path)
    with pytest.raises(ValueError) as info:
        load_fitting_checkpoint(target, str(path))
    assert 'has 8 experts, the checkpoint has 4' in str(info.value)


# Keys as MMEngine revises them; wrappers looked through.
def test_module_prefix_bare_state_dict_and_tta_wrapper():
    from mmseg.models import SegTTAModel
    state = checkpoint('erfnet_moe')['state_dict']
    wrapped = OrderedDict(('module.' + key, value)
                          for key, value in state.items())
    target = model('erfnet_moe')
    for saved in (state, {'state_dict': wrapped}):
        fit = CheckpointFit(target, saved)
        assert len(fit.fitting) == fit.total == len(state)
    tta = SegTTAModel(module=target)
    check_checkpoint_fits(tta, {'state_dict': wrapped}, FILE)
    assert 'fewer than 50%' in refusal(tta, checkpoint('enet_moe'))


def test_load_fitting_checkpoint_refuses_before_loading(tmp_path):
    path = tmp_path / 'enet.pth'
    torch.save(checkpoint('enet_moe'), path)
    target = model('erfnet_moe')
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(SetupError, match=f"checkpoint '{path}' does not"):
        load_fitting_checkpoint(target, str(path))
    after = target.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_the_hook_checks_against_the_runner_model():
    hook = CheckpointFitHook()
    runner = SimpleNamespace(model=model('erfnet_moe'), _load_from=FILE)
    hook.after_load_checkpoint(runner, checkpoint('erfnet_moe'))
    with pytest.raises(SetupError, match=f"^checkpoint '{FILE}' does not"):
        hook.after_load_checkpoint(runner, checkpoint('enet_moe'))
