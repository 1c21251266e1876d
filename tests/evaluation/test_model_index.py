"""model-index.yml (what ``mim search moe_seg_plugin`` lists) against the
shipped configs."""
import copy
import os.path as osp

import pytest
import yaml
from torch import nn

from moe_seg_plugin.engine import load_config
from moe_seg_plugin.evaluation.model_index import (architecture_of,
                                                   collection_readme,
                                                   crop_size, model_entry,
                                                   model_index, moe_settings,
                                                   shipped_configs,
                                                   training_data)
from moe_seg_plugin.moe import PatchConvMoE
from moe_seg_plugin_startup.config_scope import config_root

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def index() -> dict:
    with open(osp.join(ROOT, 'model-index.yml'), encoding='utf-8') as f:
        return yaml.safe_load(f)


def _by_config(index) -> dict:
    return {m['Config']: m for m in index['Models']}


def test_every_shipped_config_is_listed_once(index):
    listed = [m['Config'] for m in index['Models']]
    shipped = ['configs/' + c for c in shipped_configs(config_root())]
    assert sorted(listed) == shipped, (
        'model-index.yml is out of date: run python tools/misc/model_index.py')
    names = [m['Name'] for m in index['Models']]
    assert len(set(names)) == len(names)
    collections = {c['Name'] for c in index['Collections']}
    assert {m['In Collection'] for m in index['Models']} == collections


def test_each_collection_points_at_its_folders_readme(index):
    for collection in index['Collections']:
        readme = collection['README']
        folder = readme.split('/')[1]
        assert readme == f'configs/{folder}/README.md', collection
        assert osp.isfile(osp.join(ROOT, readme)), readme
        listed = [
            m['Config'] for m in index['Models']
            if m['In Collection'] == collection['Name']
            and not m['Config'].startswith('configs/ablations/')
        ]
        assert listed and all(
            c.startswith(f'configs/{folder}/') for c in listed), listed
    assert collection_readme('UPerNet', index['Models']) == (
        'configs/convnext/README.md')


def test_a_collection_spread_over_folders_has_no_readme():
    models = [{'In Collection': 'PSPNet', 'Config': 'configs/pspnet/a.py'},
              {'In Collection': 'PSPNet', 'Config': 'configs/other/b.py'},
              {'In Collection': 'PSPNet',
               'Config': 'configs/ablations/placement/c.py'}]
    with pytest.raises(ValueError, match="'other', 'pspnet'"):
        collection_readme('PSPNet', models)
    assert collection_readme('PSPNet', models[::2]) == (
        'configs/pspnet/README.md')


def test_update_reuses_listed_entries_and_counts_only_new_configs():
    enet = 'enet/enet_1xb4-1k_street-cityscapes-256x256.py'
    moe = 'enet/patchmoe_enet_1xb4-1k_street-cityscapes-256x256.py'
    listed = {'Name': 'kept as listed', 'Config': 'configs/' + enet,
              'In Collection': 'ENet', 'Metadata': {}}
    gone = dict(listed, Config='configs/enet/no_longer_shipped.py')
    counted = []
    index = model_index(config_root(), configs=[enet, moe], flops=False,
                        progress=counted.append, kept=[listed, gone])
    assert counted == [moe]
    assert index['Models'][0] is listed
    assert index['Models'][1]['Config'] == 'configs/' + moe
    assert [m['Config'] for m in index['Models']] == [
        'configs/' + enet, 'configs/' + moe]


def test_families_and_bases_are_not_configs():
    shipped = shipped_configs(config_root())
    assert not any(c.startswith('_base_') for c in shipped)
    assert not any('families' in c for c in shipped)
    assert 'enet/patchmoe_enet_1xb4-1k_street-cityscapes-256x256.py' in shipped


def test_data_and_crop_size_match_each_config(index):
    for path, entry in _by_config(index).items():
        cfg = load_config(osp.join(config_root(), path[len('configs/'):]))
        height, width = crop_size(cfg)
        assert entry['Metadata']['Crop Size'] == f'{height}x{width}', path
        assert entry['Metadata']['Training Data'] == training_data(cfg), path
        assert entry['In Collection'] == architecture_of(path), path


@pytest.mark.parametrize('relative', [
    'enet/patchmoe_enet_1xb4-1k_street-cityscapes-256x256.py',
    'enet/enet_1xb4-1k_street-cityscapes-256x256.py',
])
def test_entries_equal_a_fresh_count(index, relative):
    listed = copy.deepcopy(_by_config(index)['configs/' + relative])
    fresh = model_entry(config_root(), relative)
    # A MoE layer's FLOPs follow where its fresh gate routes the input
    # (seeded; a float difference on another CPU may move a patch).
    tolerance = 0.02 if 'MoE Experts' in listed['Metadata'] else 0
    assert fresh['Metadata'].pop('FLOPs (G)') == pytest.approx(
        listed['Metadata'].pop('FLOPs (G)'), rel=tolerance)
    assert fresh == listed


def test_settings_of_a_moe_config(index):
    meta = _by_config(index)[
        'configs/enet/patchmoe_enet_1xb4-1k_street-cityscapes-256x256.py'][
            'Metadata']
    assert meta['MoE Experts'] == 8 and meta['MoE Top-k'] == 2
    assert meta['MoE Grid'] == '3x3'
    assert meta['MoE Gate'] == 'DoubleConvGAPGate'
    assert meta['MoE Balance Loss'] == 'MoESwitchLoss'
    assert meta['MoE Layers'] == ['decode_head.bottleneck.ext']
    assert meta['Training Data'] == 'street scenes (Cityscapes layout)'
    assert meta['Parameters (M)'] > 0 and meta['FLOPs (G)'] > 0


def test_formulation_configs_list_their_expert_scope(index):
    entries = _by_config(index)
    folder = 'configs/ablations/formulation/'
    merged = entries[f'{folder}patchmoe-merged_erfnet_fcn_4xb4-160k_'
                     'cityscapes-512x1024.py']['Metadata']
    low_rank = entries[f'{folder}patchmoe-lowrank32_pspnet_r18-d8_4xb2-80k_'
                       'cityscapes-512x1024.py']['Metadata']
    paper = entries['configs/erfnet/patchmoe_erfnet_fcn_4xb4-160k_'
                    'cityscapes-512x1024.py']['Metadata']
    assert merged['MoE Expert Scope'] == 'conv'
    assert low_rank['MoE Expert Scope'] == 'conv (rank 32)'
    assert 'MoE Expert Scope' not in paper


def test_architecture_names():
    assert architecture_of('deeplabv3plus/patchmoe_deeplabv3plus_r18.py') \
        == 'DeepLabV3+'
    assert architecture_of(
        'ablations/placement/patchmoe-stacked_unet-s5-d16_fcn.py') == 'UNet'
    assert architecture_of('erfnet/erfnet_fcn_4xb4.py') == 'ERFNet'
    assert architecture_of('enet/enet_4xb4.py') == 'ENet'


def test_settings_stock_model_and_layers_that_differ():
    assert moe_settings(nn.Conv2d(3, 3, 1)) == {}

    class Two(nn.Module):

        def __init__(self):
            super().__init__()
            self.a = PatchConvMoE(nn.Conv2d(3, 4, 3, padding=1),
                                  num_experts=4, top_k=2)
            self.b = PatchConvMoE(nn.Conv2d(4, 2, 1), num_experts=4,
                                  top_k=1, patch_size=(8, 8))

    settings = moe_settings(Two())
    assert settings['MoE Layers'] == ['a', 'b']
    assert settings['MoE Experts'] == 4
    assert settings['MoE Top-k'] == 'per layer'
    assert settings['MoE Grid'] == 'per layer'
    assert settings['MoE Balance Loss'] == 'none'
