"""Ablation families: every value of every family builds on every arch with
its settings in every MoE layer, runs on a tiny input, expands into the
right runs, resolves on the real data sets' configs, and bad input is one
clear SetupError."""
import json
import os.path as osp
from functools import lru_cache
from typing import Dict, List

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from moe_seg_plugin.engine import SetupError, load_config
from moe_seg_plugin.models.injection import moe_layers
from moe_seg_plugin.sweep import family as family_module
from moe_seg_plugin.sweep.family import (arch_names, arch_table,
                                         build_without_weights, expand,
                                         family_names, load_family,
                                         run_config)
from moe_seg_plugin.sweep.run import measure
from moe_seg_plugin.sweep.spec import BASELINE, RunSpec
from moe_seg_plugin_startup.config_scope import config_root

FAMILIES = family_names()
ARCHS = arch_names()
#: Shipped families and their values (the issue's list).
EXPECTED_VALUES = {
    'grid': ['grid1x1', 'grid2x2', 'grid3x3', 'grid4x4', 'patch48px',
             'patch96px'],
    'top_k': ['top1', 'top2', 'top4'],
    'num_experts': ['n2', 'n4', 'n8', 'n16'],
    'gate': ['gap_linear', 'conv_gap', 'double_conv_gap'],
    'balance_loss': ['none', 'importance', 'load', 'switch', 'entropy',
                     'zloss'],
    'placement': ['decoder', 'classifier', 'encoder', 'stacked'],
    'shared_experts': ['independent', 'shared1'],
    'expert_init': ['random', 'upcycled'],
    'formulation': ['module', 'merged', 'lowrank32', 'lowrank16'],
}
#: Archs whose MoE layers cannot have conv-scope experts (several convs).
MODULE_SCOPE_ONLY = ('deeplabv3plus', 'enet')
#: (arch, setting, value) of the arch table's unavailable PatchConvMoE
#: settings (placements are checked by the placement tests).
UNAVAILABLE_SETTINGS = [
    (arch, key, value) for arch, entry in arch_table().items()
    for key, reasons in entry.get('unavailable', {}).items()
    if key != 'placement' for value in reasons
]
#: Model summaries by model config (each model is built once).
_SUMMARIES: Dict[str, dict] = {}


def _build(model_cfg) -> torch.nn.Module:
    init_default_scope('mmseg')
    return MODELS.build(model_cfg)


def _layer_summary(layer) -> dict:
    """The settings a PatchConvMoE layer was built with."""
    return dict(
        num_experts=layer.num_experts,
        top_k=layer.top_k,
        weighting=layer.weighting,
        grid=layer.grid,
        patch_size=layer.patch_size,
        gate=type(layer.gate).__name__,
        noisy_gating=layer.noisy_gating,
        num_shared_experts=len(layer.shared_experts),
        expert_init=layer.expert_init,
        expert_scope=layer.expert_scope,
        merge_experts=layer.merge_experts,
        expert_rank=layer.expert_rank,
        balance_loss=[(type(loss).__name__, loss.loss_weight)
                      for loss in layer.balance_losses])


def _summary(model_cfg) -> dict:
    """Parameters and MoE layers (path -> settings) of a model config."""
    key = repr(model_cfg)
    if key not in _SUMMARIES:
        model = build_without_weights(model_cfg)
        _SUMMARIES[key] = dict(
            params=sum(p.numel() for p in model.parameters()),
            layers={
                path: _layer_summary(layer)
                for path, layer in moe_layers(model).items()
            })
    return _SUMMARIES[key]


def _expected(paper: dict, options: dict) -> dict:
    """A paper-default layer's settings with a value's options on top."""
    expected = dict(paper)
    for key, value in options.items():
        if key == 'grid':
            expected.update(grid=tuple(value), patch_size=None)
        elif key == 'patch_size':
            expected.update(patch_size=(value, value), grid=None)
        elif key == 'gate':
            expected['gate'] = value['type']
        elif key == 'balance_loss':
            expected['balance_loss'] = [] if value is None else [
                (value['type'], value['loss_weight'])]
        elif key != 'targets':
            expected[key] = value
    return expected


@lru_cache(maxsize=None)
def _model_cfg(config: str):
    """``model`` of a config file (read once)."""
    return load_config(config).model


def _stock_file(moe_config: str) -> str:
    folder, name = osp.split(moe_config)
    return osp.join(folder, name.replace('patchmoe_', '', 1))


def _paper_layer(arch: str) -> dict:
    """The one MoE layer of an arch's paper-default street config."""
    config = expand('grid', [arch], [0])[0].config
    layers = _summary(_model_cfg(config))['layers']
    assert list(layers) == arch_table()[arch]['placement']['decoder']
    return next(iter(layers.values()))


@pytest.mark.slow
@pytest.mark.parametrize('arch', ARCHS)
@pytest.mark.parametrize('name', FAMILIES)
def test_every_value_builds_with_its_settings(name: str, arch: str):
    family = load_family(name)
    paper = _paper_layer(arch)
    decoder = arch_table()[arch]['placement']['decoder']
    for spec in expand(family, [arch], [0]):
        summary = _summary(run_config(spec).model)
        if spec.baseline:
            stock = _summary(_model_cfg(_stock_file(spec.config)))
            assert summary == dict(stock, layers={})
            continue
        layers = summary['layers']
        targets = spec.options.get('targets', decoder)
        assert sorted(layers) == sorted(targets), spec
        for path, layer in layers.items():
            assert layer == _expected(paper, spec.options), (spec, path)
        if spec.value == family.default:
            assert list(layers.values()) == [paper], spec


def _samples(count: int, size: int, num_classes: int) -> List:
    samples = []
    for _ in range(count):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, size, size)))
        sample.set_metainfo(dict(img_shape=(size, size),
                                 pad_shape=(size, size)))
        samples.append(sample)
    return samples


@pytest.mark.slow
@pytest.mark.parametrize('name,arch', [(name, 'erfnet') for name in FAMILIES]
                         + [('placement', 'enet')])
def test_every_value_trains_and_runs(name: str, arch: str):
    """A loss step (batch 2) and an eval forward (1x3x64x64) per value."""
    for spec in expand(name, [arch], [0]):
        torch.manual_seed(0)
        model = _build(run_config(spec).model)
        model.train()
        classes = model.decode_head.num_classes
        losses = model.loss(torch.randn(2, 3, 64, 64),
                            _samples(2, 64, classes))
        total = sum(v for k, v in losses.items() if 'loss' in k)
        assert torch.isfinite(total), spec
        total.backward()
        balance = [k for k in losses if 'loss_moe' in k]
        assert bool(balance) == (spec.baseline is False
                                 and spec.value != 'none'), (spec, balance)
        model.eval()
        with torch.no_grad():
            out = model(torch.randn(1, 3, 64, 64), mode='tensor')
        assert out.shape[:2] == (1, classes) and torch.isfinite(out).all()


class _Seen(Exception):
    """Carries the input size a layer saw; ends the forward there."""


def _stop_at_input(module, args):
    raise _Seen(tuple(args[0].shape[2:]))


@pytest.mark.parametrize('arch', ARCHS)
def test_arch_stride_is_the_default_layer_map(arch: str):
    """The arch table's stride: crop size / the default layer's input
    (a forward on the meta device, stopped at the layer)."""
    model_cfg = _model_cfg(expand('grid', [arch], [0])[0].config)
    model = build_without_weights(model_cfg).eval()
    (layer, ) = moe_layers(model).values()
    layer.register_forward_pre_hook(_stop_at_input)
    crop = tuple(model_cfg.data_preprocessor.size)
    with pytest.raises(_Seen) as seen:
        model._forward(torch.empty(1, 3, *crop, device='meta'))
    stride = arch_table()[arch]['stride']
    assert tuple(size * stride for size in seen.value.args[0]) == crop


def test_shipped_families():
    assert FAMILIES == sorted(EXPECTED_VALUES)
    for name in FAMILIES:
        family = load_family(name)
        assert list(family.values) == EXPECTED_VALUES[name]
        assert family.default in family.values and family.baseline
        assert family.description and '\n' not in family.description
        assert isinstance(family.finding, str)
        assert all(c['value'] in family.values for c in family.claims)
    assert load_family('top_k').values['top1'] == dict(
        top_k=1, weighting='gate_prob')
    assert load_family('balance_loss').values['load']['noisy_gating']


def test_expansion_counts_order_and_run_ids():
    runs = expand('grid', ['pspnet', 'enet'], [0, 1, 2])
    assert len(runs) == 2 * 3 + 6 * 2 * 3
    assert [r.value for r in runs[:6]] == [BASELINE] * 6
    assert [(r.arch, r.seed) for r in runs[:6]] == [
        (a, s) for a in ('pspnet', 'enet') for s in (0, 1, 2)]
    assert [r.value for r in runs[6:24:3]] == EXPECTED_VALUES['grid']
    assert [r.seed for r in runs[6:12]] == [0, 1, 2, 0, 1, 2]
    assert len({r.run_id for r in runs}) == len(runs)
    for run in runs:
        assert RunSpec.from_dict(json.loads(json.dumps(run.to_dict()))) \
            == run
    subset = expand('grid', ['unet'], [5], values=['grid4x4', 'grid1x1'])
    assert [r.value for r in subset] == [BASELINE, 'grid1x1', 'grid4x4']
    assert [r.options for r in subset] == [{}, dict(grid=[1, 1]),
                                           dict(grid=[4, 4])]


def test_patch_sizes_follow_the_arch_stride():
    sizes = {
        arch: [r.options['patch_size'] for r in expand(
            'grid', [arch], [0], values=['patch48px', 'patch96px'])[1:]]
        for arch in ARCHS
    }
    assert sizes == dict(deeplabv3plus=[12, 24], pspnet=[6, 12],
                         lraspp=[24, 48], unet=[48, 96], erfnet=[24, 48],
                         enet=[24, 48])


def test_upcycled_runs_need_the_same_seeds_baseline():
    runs = expand('expert_init', ['pspnet', 'unet'], [0, 1])
    ids = [r.run_id for r in runs]
    for run in runs:
        if run.value == 'upcycled':
            assert run.options == dict(expert_init='copy')
            assert run.needs == f'{run.arch}__{BASELINE}__seed{run.seed}'
            assert ids.index(run.needs) < ids.index(run.run_id)
        else:
            assert run.needs is None


def test_placement_leaves_enets_classifier_out():
    runs = expand('placement', ['enet', 'erfnet'], [0])
    values = {(r.arch, r.value) for r in runs}
    assert ('enet', 'classifier') not in values
    assert ('erfnet', 'classifier') in values
    assert len(runs) == 2 + 3 + 4
    with pytest.raises(SetupError, match='none of the values'):
        expand('placement', ['enet'], [0], values=['classifier'])


def test_formulation_skips_conv_scope_where_layers_have_several_convs(
        monkeypatch):
    logged: List[str] = []
    monkeypatch.setattr(family_module, 'print_log',
                        lambda message, **kwargs: logged.append(message))
    runs = expand('formulation', ARCHS, [0])
    values = {arch: [r.value for r in runs if r.arch == arch]
              for arch in ARCHS}
    conv_scope = ['merged', 'lowrank32', 'lowrank16']
    assert values == {
        arch: [BASELINE, 'module'] if arch in MODULE_SCOPE_ONLY else
        [BASELINE, 'module'] + conv_scope for arch in ARCHS}
    assert logged == [
        f"family 'formulation': value {value!r} skipped on arch {arch!r}: "
        f"expert_scope='conv': "
        f"{arch_table()[arch]['unavailable']['expert_scope']['conv']}"
        for arch in MODULE_SCOPE_ONLY for value in conv_scope]
    with pytest.raises(SetupError, match='none of the values'):
        expand('formulation', ['enet'], [0], values=['merged', 'lowrank16'])


@pytest.mark.parametrize('arch,key,value', UNAVAILABLE_SETTINGS)
def test_unavailable_settings_are_what_the_layer_refuses(
        arch: str, key: str, value: str):
    """The arch table's unavailable settings hold: the arch's MoE layer
    refuses each with its one-line error."""
    config = expand('grid', [arch], [0])[0].config
    spec = RunSpec('formulation', arch, 'v', 0, config, {key: value})
    with pytest.raises(ValueError,
                       match=rf"decode_head.moe: {key}={value!r}: .* has "
                       rf"\d convolutions; .*use {key}='module'"):
        _build(run_config(spec).model)


def test_formulation_values_are_the_moe_presets():
    """configs/_base_/moe/: the paper's settings with each value's."""
    presets = Config.fromfile(
        osp.join(config_root(), '_base_', 'moe', 'patch_moe_lowrank.py'))
    values = load_family('formulation').values
    for value in ('merged', 'lowrank32', 'lowrank16'):
        assert presets[f'moe_{value}'] == dict(presets.moe_paper,
                                               **values[value])
    assert 'expert_scope' not in presets.moe_paper  # 'module' by default
    assert values['module'] == dict(expert_scope='module')


def _measured(values: List[str]) -> Dict[str, dict]:
    """A sweep row's params, GFLOPs and latency of the stock ERFNet and
    each formulation value (street crop, untrained weights)."""
    specs = expand('formulation', ['erfnet'], [0], values=values)
    return {spec.value: measure(run_config(spec), None, spec.baseline)
            for spec in specs}


@pytest.mark.slow
def test_formulation_rows_compare_params_and_flops():
    rows = _measured(['module', 'merged'])
    stock, module, merged = (rows[v] for v in (BASELINE, 'module',
                                                'merged'))
    # Merged: one norm instead of one per expert; one convolution per
    # patch instead of top-k = 2.
    assert stock['params'] < merged['params'] < module['params']
    assert stock['gflops'] < merged['gflops'] < module['gflops']
    assert merged['latency_ratio'] > 0 and module['latency_ratio'] > 0


@pytest.mark.slow
def test_formulation_low_rank_rows_compare_params_and_flops():
    rows = _measured(['merged', 'lowrank32', 'lowrank16'])
    merged, rank32, rank16 = (rows[v] for v in ('merged', 'lowrank32',
                                                'lowrank16'))
    assert rank16['params'] < rank32['params'] < merged['params']
    assert rank16['gflops'] < rank32['gflops'] < merged['gflops']


def test_run_config_seed_cfg_options_and_baseline():
    base, value = expand('gate', ['enet'], [7], values=['gap_linear'])
    cfg = run_config(value, {'train_cfg.max_iters': 4})
    assert cfg.randomness.seed == 7 and cfg.train_cfg.max_iters == 4
    assert cfg.model.decode_head.moe.gate == dict(type='GAPLinearGate')
    stock = run_config(base)
    assert stock.randomness.seed == 7
    assert stock.model.decode_head.type == 'ENetHead'
    assert 'moe' not in stock.model.decode_head
    # A run read back from sweep.json (lists for tuples) gives the same.
    grid = expand('grid', ['enet'], [0], values=['grid2x2'])[1]
    again = RunSpec.from_dict(json.loads(json.dumps(grid.to_dict())))
    assert run_config(again).model.decode_head.moe.grid == (2, 2)


@pytest.mark.parametrize('dataset,data_type', [
    ('cityscapes', 'CityscapesDataset'), ('bdd100k', 'BDD100KDataset')])
@pytest.mark.parametrize('arch', ARCHS)
def test_real_dataset_configs_resolve(arch: str, dataset: str,
                                      data_type: str):
    for name in FAMILIES:
        for spec in expand(name, [arch], [0], dataset=dataset):
            assert f'{dataset}-512x1024' in spec.config
            cfg = run_config(spec)
            assert cfg.train_dataloader.dataset.type == data_type
            assert cfg.model.data_preprocessor.size == (512, 1024)


# Bad input: one SetupError naming what is wrong and what is allowed.
def _family_file(tmp_path, values: str, extra: str = '') -> str:
    path = tmp_path / 'my_family.py'
    path.write_text(f"family = dict(description='test', default='a', "
                    f'values=dict({values}){extra})\n')
    return str(path)


def test_unknown_family_value_arch_dataset():
    with pytest.raises(SetupError, match=r"unknown family 'grids'.*'grid'"):
        load_family('grids')
    with pytest.raises(SetupError, match='does not exist'):
        load_family('no/such/family.py')
    with pytest.raises(SetupError,
                       match=r"unknown value\(s\) \['grid5x5'\].*grid4x4"):
        expand('grid', ['enet'], [0], values=['grid5x5'])
    with pytest.raises(SetupError, match=r"unknown arch 'segnet'.*'enet'"):
        expand('grid', ['segnet'], [0])
    with pytest.raises(SetupError,
                       match=r"unknown dataset 'kitti'.*'cityscapes'"):
        expand('grid', ['enet'], [0], dataset='kitti')
    with pytest.raises(SetupError, match=r'seeds given more than once'):
        expand('grid', ['enet'], [0, 0])


def test_family_file_mistakes(tmp_path):
    with pytest.raises(SetupError,
                       match=r"value 'a': unknown setting\(s\) "
                       r"\['num_expert'\].*num_experts"):
        load_family(_family_file(tmp_path, 'a=dict(num_expert=4)'))
    with pytest.raises(SetupError, match=r'`default` must name one'):
        load_family(_family_file(tmp_path, 'b=dict(top_k=1)'))
    with pytest.raises(SetupError, match=r"claims\[0\]: value 'c'"):
        load_family(_family_file(
            tmp_path, 'a=dict(top_k=1)', ", claims=[dict(text='t', "
            "value='c', metric='mIoU', best='max')]"))
    with pytest.raises(SetupError, match='not a multiple of the arch'):
        expand(load_family(_family_file(
            tmp_path, 'a=dict(image_patch_size=20)')), ['pspnet'], [0])
    with pytest.raises(SetupError, match='value name'):
        load_family(_family_file(tmp_path, "a=dict(), **{'x__y': dict()}"))
    with pytest.raises(SetupError, match=r"value 'a': arch 'enet': unknown "
                       r"placement 'head'; allowed: \['decoder'"):
        expand(load_family(_family_file(tmp_path, "a=dict(placement='head')")),
               ['enet'], [0])
    with pytest.raises(SetupError, match='cannot go with `placement`'):
        load_family(_family_file(
            tmp_path, "a=dict(image_patch_size=48, placement='encoder')"))
    with pytest.raises(SetupError, match='needs the stock baseline'):
        load_family(_family_file(tmp_path, 'a=dict(from_baseline=True)',
                                 ', baseline=False'))
    (tmp_path / 'empty.py').write_text('values = dict()\n')
    with pytest.raises(SetupError, match='defines no `family'):
        load_family(str(tmp_path / 'empty.py'))


@pytest.mark.parametrize('unavailable,message', [
    ("dict(expert_scopes=dict(conv='r'))",
     r"arch 'x': unavailable: unknown setting 'expert_scopes'; allowed: "
     r"\['placement', .*'expert_scope'"),
    ("dict(expert_scope=dict(conv=''))",
     r"arch 'x': unavailable.expert_scope: must be dict\(value='reason'"),
    ("dict(expert_scope='conv')",
     r"arch 'x': unavailable.expert_scope: must be dict\(value='reason'"),
])
def test_arch_table_unavailable_mistakes(tmp_path, monkeypatch,
                                         unavailable: str, message: str):
    path = tmp_path / '_archs.py'
    path.write_text(f'archs = dict(x=dict(unavailable={unavailable}))\n')
    monkeypatch.setattr(family_module, 'ARCHS_FILE', str(path))
    with pytest.raises(SetupError, match=message):
        arch_table()


def test_a_setting_whose_key_does_not_exist_in_the_config():
    moe = expand('grid', ['pspnet'], [0], values=['grid2x2'])[1]
    stock = RunSpec('grid', 'pspnet', 'grid2x2', 0, _stock_file(moe.config),
                    dict(grid=[2, 2]))
    with pytest.raises(SetupError,
                       match=r"family 'grid', value 'grid2x2', arch "
                       r"'pspnet': key 'grid'.*no MoE layer"):
        run_config(stock)
    typo = RunSpec('grid', 'pspnet', 'grid2x2', 0, moe.config,
                   dict(grids=[2, 2]))
    with pytest.raises(SetupError, match=r"unknown key\(s\) \['grids'\]"):
        run_config(typo)


def test_a_target_that_is_not_in_the_model(tmp_path):
    path = _family_file(tmp_path, "a=dict(targets=['decode_head.convs.9'])")
    spec = expand(load_family(path), ['erfnet'], [0])[-1]
    with pytest.raises(SetupError,
                       match=r"family 'my_family', value 'a', arch 'erfnet'"
                       r": key 'targets': 'decode_head.convs.9' is no "
                       r'module.*decode_head.convs.0'):
        run_config(spec)
    path = _family_file(tmp_path, "a=dict(targets=['decode_head.conv_seg'])")
    spec = expand(load_family(path), ['enet'], [0])[-1]
    with pytest.raises(SetupError, match='is not a conv-like module'):
        run_config(spec)
