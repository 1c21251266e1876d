"""Every shipped config builds a segmentor that runs in tensor and loss mode
(like MMSeg's own config tests)."""
import json
import pathlib
from typing import Dict

import pytest
import torch
from mmengine import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmengine.structures import PixelData

import moe_seg_plugin  # noqa: F401
from moe_seg_plugin.models import moe_layers

CONFIG_ROOT = pathlib.Path(__file__).resolve().parents[2] / 'configs'
# Model configs: not the bases, not the ablation families (sweep
# definitions, tested in tests/sweep).
CONFIGS = sorted(
    p for p in CONFIG_ROOT.rglob('*.py')
    if '_base_' not in p.parts and 'families' not in p.parts)


def _batch(size, num_classes=19, batch=2):
    inputs = torch.rand(batch, 3, *size) * 255
    samples = []
    for _ in range(batch):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, *size)))
        sample.set_metainfo(dict(img_shape=size, ori_shape=size,
                                 pad_shape=size))
        samples.append(sample)
    return inputs, samples


def test_every_family_has_configs():
    names = {p.name for p in CONFIGS}
    for family in ('deeplabv3plus_r18-d8', 'deeplabv3plus_r50-d8',
                   'pspnet_r18-d8', 'pspnet_r50-d8', 'lraspp_m-v3-d8',
                   'unet-s5-d16_fcn', 'erfnet_fcn', 'enet'):
        for data in ('cityscapes-512x1024', 'bdd100k-512x1024',
                     'street-cityscapes'):
            found = [n for n in names if n.startswith(family) and data in n]
            assert len(found) == 1, (family, data)
            assert f'patchmoe_{found[0]}' in names


@pytest.mark.parametrize('stem', [
    'upernet_convnext-t_4xb2-80k_cityscapes-512x1024',
    'upernet_convnext-t_1xb4-1k_street-cityscapes-256x256'
])
def test_mmpretrain_configs_place_moe_in_head_and_backbone(stem):
    """Read without the extra: the zoo is imported when the backbone is
    built, not when the config is read."""
    folder = CONFIG_ROOT / 'convnext'
    stock, head, backbone = (Config.fromfile(str(folder / f'{p}{stem}.py'))
                             for p in ('', 'patchmoe_', 'patchmoe-backbone_'))
    for cfg in (stock, head, backbone):
        assert cfg.model.backbone.type == 'mmpretrain.ConvNeXt'
        assert cfg.model.backbone.arch == 'tiny'
        assert cfg.model.backbone.init_cfg is None  # nothing downloads
        assert 'mmpretrain.models' not in str(cfg.custom_imports)
    assert head.model.decode_head.type == 'PatchMoEHead'
    assert head.model.decode_head.head_type == 'UPerHead'
    assert backbone.model.type == 'PatchMoESegmentor'
    assert [layer.target for layer in backbone.model.moe_layers] == [
        'backbone.stages.3.0.depthwise_conv']


def test_placement_and_shared_expert_presets_cover_every_architecture():
    ablations = CONFIG_ROOT / 'ablations'
    for family in ('deeplabv3plus_r18-d8', 'pspnet_r18-d8', 'lraspp_m-v3-d8',
                   'unet-s5-d16_fcn', 'erfnet_fcn', 'enet'):
        for preset in ('placement/patchmoe-backbone',
                       'placement/patchmoe-stacked',
                       'shared_experts/patchmoe-shared1'):
            assert list(ablations.glob(f'{preset}_{family}_*.py')), (preset,
                                                                    family)


#: The configs whose model ran, by the model's settings: configs that differ
#: only in data, schedule, crop size or test mode (street / Cityscapes /
#: BDD100K variants) share one run.
_RAN: Dict[str, str] = {}


def _model_key(cfg: Config) -> str:
    """The model's settings without those the test's forward passes do not
    use (the data preprocessor's size, train_cfg, test_cfg)."""
    model = cfg.model.to_dict()
    for key in ('data_preprocessor', 'train_cfg', 'test_cfg'):
        model.pop(key, None)
    return json.dumps(model, sort_keys=True, default=str)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.stem)
def test_config_builds_and_runs(path, skip_without_mmpretrain_extra):
    skip_without_mmpretrain_extra(path)
    cfg = Config.fromfile(str(path))
    assert cfg.model.get('pretrained') is None
    if 'bdd100k' in path.name:
        assert cfg.train_dataloader.dataset.type == 'BDD100KDataset'
    else:
        assert cfg.train_dataloader.dataset.type == 'CityscapesDataset'
    key = _model_key(cfg)
    if key in _RAN:
        return  # the same model already built and ran (_RAN[key])
    _RAN[key] = path.stem
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    is_moe = path.name.startswith('patchmoe')
    assert bool(moe_layers(model)) == is_moe
    size = (400, 400) if 'lraspp' in path.name else (64, 96)
    inputs, samples = _batch(size)
    model.train()
    losses = model(inputs, samples, mode='loss')
    # A cascade (OCRNet) names its heads' losses decode_0, decode_1, ...
    assert 'decode.loss_ce' in losses or 'decode_1.loss_ce' in losses
    if is_moe:
        switch = [k for k in losses if 'loss_moe_switch' in k]
        assert len(switch) == len(moe_layers(model))
        for key in losses:
            if 'moe_usage_entropy' in key:
                assert 0 <= losses[key] <= 1
    model.eval()
    with torch.no_grad():
        logits = model(inputs, mode='tensor')
    assert logits.shape[:2] == (2, 19)
