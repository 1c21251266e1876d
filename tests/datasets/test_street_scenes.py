"""Synthetic street scenes: generator, file layouts, MMSeg loading, CLI."""
import os
import os.path as osp
import pathlib
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from moe_seg_plugin.datasets import generate_scene
from moe_seg_plugin.datasets.layouts import (CITIES, TRAIN_ID_TO_LABEL_ID,
                                             scene_rng, write_bdd100k,
                                             write_cityscapes)
from moe_seg_plugin.datasets.street_scenes import CLASSES, IGNORE_INDEX, SKY

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROAD = CLASSES.index('road')
CITYSCAPES_NAME = re.compile(
    r'^(?P<city>[a-z]+)_(?P<seq>\d{6})_(?P<frame>\d{6})_'
    r'(?P<kind>leftImg8bit|gtFine_labelTrainIds|gtFine_labelIds)\.png$')
BDD_NAME = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{8}\.(jpg|png)$')


@pytest.fixture(scope='module')
def scenes():
    """20 default-size scenes, as the train split of seed 0 holds them."""
    return [generate_scene(scene_rng(0, 'train', i), 256, 512)
            for i in range(20)]


def read(path, flags=cv2.IMREAD_UNCHANGED):
    image = cv2.imread(str(path), flags)
    assert image is not None, path
    return image


def relative_files(root):
    return sorted(osp.relpath(osp.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


def test_same_seed_same_scene_other_seed_other_scene():
    a_img, a_lab = generate_scene(np.random.default_rng(3), 96, 160)
    b_img, b_lab = generate_scene(np.random.default_rng(3), 96, 160)
    c_img, c_lab = generate_scene(np.random.default_rng(4), 96, 160)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    assert not np.array_equal(a_img, c_img)
    assert not np.array_equal(a_lab, c_lab)


@pytest.mark.parametrize('size', [(64, 128), (97, 203), (256, 512)])
def test_shapes_and_dtypes(size):
    image, label = generate_scene(np.random.default_rng(0), *size)
    assert image.shape == (*size, 3) and image.dtype == np.uint8
    assert label.shape == size and label.dtype == np.uint8


def test_tiny_size_is_refused():
    with pytest.raises(ValueError, match='too small'):
        generate_scene(np.random.default_rng(0), 4, 4)


def test_label_values_are_train_ids(scenes):
    values = np.unique(np.concatenate([lab.ravel() for _, lab in scenes]))
    assert set(values.tolist()) <= set(range(19)) | {IGNORE_INDEX}


def test_every_class_appears(scenes):
    per_image = np.array([np.bincount(lab.ravel(), minlength=256)[:19] > 0
                          for _, lab in scenes])
    missing = [CLASSES[c] for c in range(19) if not per_image[:, c].any()]
    assert not missing, f'classes never drawn: {missing}'
    # most classes in most images
    assert np.median(per_image.sum(axis=1)) >= 14
    ignored = np.mean([np.mean(lab == IGNORE_INDEX) for _, lab in scenes])
    assert ignored < 0.02


def test_layout_follows_image_position(scenes):
    labels = np.stack([lab for _, lab in scenes])
    third = labels.shape[1] // 3
    top, bottom = labels[:, :third], labels[:, -third:]
    assert np.mean(top == SKY) > 0.1
    assert np.mean(top == SKY) > 20 * np.mean(bottom == SKY)
    assert np.mean(bottom == ROAD) > 0.3
    assert np.mean(bottom == ROAD) > 20 * np.mean(top == ROAD)


def test_images_vary_within_a_class(scenes):
    """No class is given away by one exact colour."""
    road = np.concatenate([img[lab == ROAD] for img, lab in scenes[:5]])
    assert len(np.unique(road, axis=0)) > 1000
    assert road.std(axis=0).min() > 8


def test_cityscapes_layout(tmp_path):
    result = write_cityscapes(str(tmp_path), num_train=5, num_val=2,
                              height=64, width=128, seed=1)
    files = relative_files(tmp_path)
    assert files == sorted(result.files) and len(files) == 3 * 7
    assert result.counts == {'train': 5, 'val': 2}
    for rel in files:
        top, split, city, name = rel.split(os.sep)
        match = CITYSCAPES_NAME.match(name)
        assert match, rel
        assert match['city'] == city and city in CITIES[split]
        assert (top == 'leftImg8bit') == (match['kind'] == 'leftImg8bit')
        assert match['frame'] == '000019'
    stem = osp.join(tmp_path, 'gtFine', 'train', 'ambermoor',
                    'ambermoor_000000_000019_gtFine_')
    train_ids = read(stem + 'labelTrainIds.png')
    label_ids = read(stem + 'labelIds.png')
    assert train_ids.shape == (64, 128) and train_ids.dtype == np.uint8
    image = read(osp.join(tmp_path, 'leftImg8bit', 'train', 'ambermoor',
                          'ambermoor_000000_000019_leftImg8bit.png'))
    assert image.shape == (64, 128, 3)
    expected_img, expected_lab = generate_scene(scene_rng(1, 'train', 0),
                                                64, 128)
    assert np.array_equal(train_ids, expected_lab)
    assert np.array_equal(image[..., ::-1], expected_img)  # PNG is lossless
    lut = np.zeros(256, np.uint8)
    for train_id, label_id in TRAIN_ID_TO_LABEL_ID.items():
        lut[train_id] = label_id
    assert np.array_equal(label_ids, lut[train_ids])


def test_label_id_mapping_is_cityscapes():
    assert TRAIN_ID_TO_LABEL_ID == {
        0: 7, 1: 8, 2: 11, 3: 12, 4: 13, 5: 17, 6: 19, 7: 20, 8: 21, 9: 22,
        10: 23, 11: 24, 12: 25, 13: 26, 14: 27, 15: 28, 16: 31, 17: 32,
        18: 33}


def test_bdd100k_layout(tmp_path):
    result = write_bdd100k(str(tmp_path), num_train=4, num_val=3,
                           height=64, width=128, seed=2)
    files = relative_files(tmp_path)
    assert files == sorted(result.files) and len(files) == 2 * 7
    for split, count in (('train', 4), ('val', 3)):
        images = sorted(os.listdir(tmp_path / 'images' / '10k' / split))
        masks = sorted(os.listdir(
            tmp_path / 'labels' / 'sem_seg' / 'masks' / split))
        assert len(images) == count
        assert all(BDD_NAME.match(n) for n in images + masks)
        assert [n[:-4] for n in images] == [n[:-4] for n in masks]
    again = write_bdd100k(str(tmp_path / 'more'), num_train=6, num_val=0,
                          height=64, width=128, seed=2)
    first = {osp.basename(f) for f in result.files if 'train' in f}
    assert first <= {osp.basename(f) for f in again.files}


def test_files_are_byte_identical_for_same_arguments(tmp_path):
    for name in ('a', 'b'):
        write_cityscapes(str(tmp_path / name / 'cs'), 2, 1, 48, 96, seed=5)
        write_bdd100k(str(tmp_path / name / 'bdd'), 2, 1, 48, 96, seed=5)
    files = relative_files(tmp_path / 'a')
    assert files == relative_files(tmp_path / 'b')
    for rel in files:
        assert (tmp_path / 'a' / rel).read_bytes() == (
            tmp_path / 'b' / rel).read_bytes(), rel


@pytest.mark.parametrize('layout', ['cityscapes', 'bdd100k'])
def test_stock_mmseg_datasets_find_every_sample(tmp_path, layout):
    from mmseg.datasets import BDD100KDataset, CityscapesDataset
    if layout == 'cityscapes':
        write_cityscapes(str(tmp_path), 5, 3, 64, 128, seed=0)
        cls, prefix = CityscapesDataset, dict(
            img_path='leftImg8bit/{}', seg_map_path='gtFine/{}')
    else:
        write_bdd100k(str(tmp_path), 5, 3, 64, 128, seed=0)
        cls, prefix = BDD100KDataset, dict(
            img_path='images/10k/{}',
            seg_map_path='labels/sem_seg/masks/{}')
    for split, count in (('train', 5), ('val', 3)):
        dataset = cls(data_root=str(tmp_path),
                      data_prefix={k: v.format(split)
                                   for k, v in prefix.items()},
                      pipeline=[])
        assert len(dataset) == count
        assert dataset.metainfo['classes'] == CLASSES
        for info in dataset:
            image = read(info['img_path'], cv2.IMREAD_COLOR)
            label = read(info['seg_map_path'])
            assert image.shape[:2] == label.shape == (64, 128)


def test_street_scenes_module_reexports_the_subpackage():
    """``datasets.street_scenes`` stays importable after the split."""
    from moe_seg_plugin.datasets import street, street_scenes
    for name in street.__all__:
        assert getattr(street_scenes, name) is getattr(street, name), name
    assert street_scenes.generate_scene is generate_scene


def test_modules_do_not_need_torch():
    """The generator and writers import without torch or MMSeg."""
    code = (
        'import sys, types\n'
        "pkg = types.ModuleType('street')\n"
        f"pkg.__path__ = [{str(ROOT / 'moe_seg_plugin' / 'datasets')!r}]\n"
        "sys.modules['street'] = pkg\n"
        'import street.layouts\n'
        "heavy = [m for m in ('torch', 'mmseg', 'mmcv') if m in sys.modules]\n"
        'assert not heavy, heavy\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def _cli(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'misc' / 'generate_street_data.py'),
         *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_cli_help():
    result = _cli('--help')
    assert result.returncode == 0
    for option in ('--layout', '--out', '--num-train', '--num-val',
                   '--height', '--width', '--seed', '--overwrite'):
        assert option in result.stdout


@pytest.mark.slow
def test_cli_writes_then_refuses_non_empty_dir(tmp_path):
    out = tmp_path / 'street'
    args = ('--layout', 'bdd100k', '--out', str(out), '--num-train', '3',
            '--num-val', '1', '--height', '64', '--width', '128', '--seed',
            '7')
    result = _cli(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert str(out) in result.stdout
    assert len(os.listdir(out / 'images' / '10k' / 'train')) == 3
    assert len(os.listdir(out / 'labels' / 'sem_seg' / 'masks' / 'val')) == 1

    refused = _cli(*args)
    assert refused.returncode != 0
    assert 'not empty' in refused.stderr and '--overwrite' in refused.stderr


def test_cli_overwrite_replaces_generated_data(tool, tmp_path):
    cli = tool('generate_street_data')
    out = tmp_path / 'street'
    common = ['--out', str(out), '--height', '48', '--width', '96',
              '--quiet']
    cli.main(common + ['--num-train', '3', '--num-val', '2'])
    (out / 'README.txt').write_text('kept')
    with pytest.raises(SystemExit):
        cli.main(common + ['--num-train', '1', '--num-val', '1'])
    cli.main(common + ['--num-train', '1', '--num-val', '1', '--overwrite'])
    assert len(os.listdir(out / 'leftImg8bit' / 'train')) == 1
    assert (out / 'README.txt').read_text() == 'kept'


@pytest.mark.parametrize('layout', ['cityscapes', 'bdd100k'])
def test_configs_load_and_run_the_train_pipeline(tmp_path, layout):
    from mmengine import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    cfg = Config.fromfile(
        str(ROOT / 'configs' / '_base_' / 'datasets' / f'street_{layout}.py'))
    assert cfg.data_root == f'data/street_{layout}/'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == cfg.data_root
        assert cfg[loader].num_workers == 2
        assert cfg[loader].persistent_workers is False
    steps = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}
    assert steps['RandomResize'].scale == (512, 256)
    assert steps['RandomResize'].ratio_range == (0.5, 2.0)
    assert steps['RandomCrop'].crop_size == (256, 256)
    tests = {t.type: t for t in cfg.test_dataloader.dataset.pipeline}
    assert tests['Resize'].scale == (512, 256)
    assert cfg.val_dataloader.dataset.data_prefix.img_path.endswith('val')

    writer = write_cityscapes if layout == 'cityscapes' else write_bdd100k
    writer(str(tmp_path), 2, 1, 256, 512, seed=0)
    init_default_scope('mmseg')
    dataset_cfg = cfg.train_dataloader.dataset.copy()
    dataset_cfg.data_root = str(tmp_path)
    dataset = DATASETS.build(dataset_cfg)
    assert len(dataset) == 2
    sample = dataset[0]
    inputs, data_sample = sample['inputs'], sample['data_samples']
    # resized to (512, 256) x [0.5, 2], then cropped to at most 256 x 256
    height, width = inputs.shape[1:]
    assert inputs.shape[0] == 3 and 128 <= height <= 256 and width == 256
    assert tuple(data_sample.gt_sem_seg.data.shape[1:]) == (height, width)
