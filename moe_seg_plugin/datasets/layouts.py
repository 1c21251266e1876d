"""Write synthetic street scenes in the Cityscapes and BDD100K layouts.

Cityscapes (``CityscapesDataset`` reads the first two)::

    ROOT/leftImg8bit/{split}/{city}/{city}_{seq:06d}_{frame:06d}_leftImg8bit.png
    ROOT/gtFine/{split}/{city}/{city}_{seq:06d}_{frame:06d}_gtFine_labelTrainIds.png
    ROOT/gtFine/{split}/{city}/{city}_{seq:06d}_{frame:06d}_gtFine_labelIds.png

BDD100K semantic segmentation (``BDD100KDataset``)::

    ROOT/images/10k/{split}/{name}.jpg
    ROOT/labels/sem_seg/masks/{split}/{name}.png

Scene ``i`` of a split is drawn from ``np.random.default_rng([seed, split,
i])``, so it does not depend on how many scenes are written, and both
layouts hold the same scenes for the same seed. Files are byte-identical
for the same arguments.
"""
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Tuple

import cv2
import numpy as np
from mmengine.utils import ProgressBar, mkdir_or_exist

from .street import generate_scene

SPLITS = ('train', 'val')
SPLIT_KEYS = {'train': 0, 'val': 1}
CITIES = {
    'train': ('ambermoor', 'brackwater', 'colmstadt', 'dunholt'),
    'val': ('elsfeld', 'farnbruck'),
}
CITYSCAPES_FRAME = 19  # Cityscapes annotates the 20th frame of a snippet
JPEG_QUALITY = 90

# Cityscapes train id -> label id (labels.py of cityscapesScripts);
# everything else, including 255, maps to 0 ('unlabeled').
TRAIN_ID_TO_LABEL_ID = {
    0: 7, 1: 8, 2: 11, 3: 12, 4: 13, 5: 17, 6: 19, 7: 20, 8: 21, 9: 22,
    10: 23, 11: 24, 12: 25, 13: 26, 14: 27, 15: 28, 16: 31, 17: 32, 18: 33,
}


@dataclass
class WrittenDataset:
    """What a writer produced.

    Args:
        layout (str): 'cityscapes' or 'bdd100k'.
        root (str): The data root.
        counts (dict): Number of samples per split.
        files (list): Paths of all written files, relative to ``root``.
    """
    layout: str
    root: str
    counts: Dict[str, int] = field(default_factory=dict)
    files: List[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: layout, samples per split, files, root."""
        splits = ', '.join(f'{n} {s}' for s, n in self.counts.items())
        return (f'{self.layout}: {splits} samples, {len(self.files)} files '
                f'in {self.root}')


def label_id_lut() -> np.ndarray:
    """Look-up table (256,) uint8 from train ids to Cityscapes label ids."""
    lut = np.zeros(256, np.uint8)
    for train_id, label_id in TRAIN_ID_TO_LABEL_ID.items():
        lut[train_id] = label_id
    return lut


def train_ids_to_label_ids(label: np.ndarray) -> np.ndarray:
    """Map a train-id label map (uint8) to Cityscapes label ids."""
    return label_id_lut()[label]


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator scene ``index`` of ``split`` is drawn from."""
    return np.random.default_rng([seed, SPLIT_KEYS[split], index])


def cityscapes_stem(split: str, index: int) -> Tuple[str, str]:
    """(city, file stem) of sample ``index``: cities take turns."""
    cities = CITIES[split]
    city = cities[index % len(cities)]
    seq = index // len(cities)
    return city, f'{city}_{seq:06d}_{CITYSCAPES_FRAME:06d}'


def bdd100k_names(seed: int, split: str, count: int) -> List[str]:
    """``count`` distinct BDD-style names like '7d2f7975-e0c1c5a7'.

    The first names do not depend on ``count``.
    """
    rng = np.random.default_rng([seed, SPLIT_KEYS[split], 100])
    names: List[str] = []
    seen = set()
    while len(names) < count:
        a, b = (int(v) for v in rng.integers(0, 2**32, size=2,
                                             dtype=np.uint64))
        name = f'{a:08x}-{b:08x}'
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def write_image(path: str, array: np.ndarray, params: Iterable[int] = ()
                ) -> None:
    """Write an RGB (h, w, 3) or single-channel (h, w) uint8 array."""
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    mkdir_or_exist(osp.dirname(path))
    ok, data = cv2.imencode(osp.splitext(path)[1], array, list(params))
    if not ok:
        raise IOError(f'could not encode {path}')
    with open(path, 'wb') as f:
        f.write(data.tobytes())


def _write_splits(layout: str, root: str, counts: Dict[str, int],
                  height: int, width: int, seed: int, progress: bool,
                  write_sample: Callable[[str, int, np.ndarray, np.ndarray],
                                         List[str]]) -> WrittenDataset:
    """Generate every split's scenes and hand each to ``write_sample``."""
    for split, count in counts.items():
        if split not in SPLIT_KEYS:
            raise ValueError(f'unknown split {split!r}; use {SPLITS}')
        if count < 0:
            raise ValueError(f'{split}: count must be >= 0, got {count}')
    result = WrittenDataset(layout=layout, root=root, counts=dict(counts))
    bar = ProgressBar(sum(counts.values())) if progress else None
    for split, count in counts.items():
        for index in range(count):
            image, label = generate_scene(scene_rng(seed, split, index),
                                          height, width)
            result.files += write_sample(split, index, image, label)
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.file.write('\n')
    return result


def write_cityscapes(root: str, num_train: int = 200, num_val: int = 50,
                     height: int = 256, width: int = 512, seed: int = 0,
                     progress: bool = False) -> WrittenDataset:
    """Write scenes in the Cityscapes layout (see the module docstring).

    Args:
        root (str): Data root; created if missing, existing files with the
            same names are replaced.
        num_train (int): Samples of the train split. Default: 200.
        num_val (int): Samples of the val split. Default: 50.
        height (int): Image rows. Default: 256.
        width (int): Image columns. Default: 512.
        seed (int): Seed of all scenes. Default: 0.
        progress (bool): Show an mmengine progress bar. Default: False.

    Returns:
        WrittenDataset: Counts and the written files.
    """
    lut = label_id_lut()

    def write_sample(split: str, index: int, image: np.ndarray,
                     label: np.ndarray) -> List[str]:
        city, stem = cityscapes_stem(split, index)
        gt_dir = osp.join('gtFine', split, city)
        files = [
            osp.join('leftImg8bit', split, city, f'{stem}_leftImg8bit.png'),
            osp.join(gt_dir, f'{stem}_gtFine_labelTrainIds.png'),
            osp.join(gt_dir, f'{stem}_gtFine_labelIds.png'),
        ]
        for rel, array in zip(files, (image, label, lut[label])):
            write_image(osp.join(root, rel), array)
        return files

    return _write_splits('cityscapes', root, {'train': num_train,
                                              'val': num_val},
                         height, width, seed, progress, write_sample)


def write_bdd100k(root: str, num_train: int = 200, num_val: int = 50,
                  height: int = 256, width: int = 512, seed: int = 0,
                  progress: bool = False) -> WrittenDataset:
    """Write scenes in the BDD100K sem_seg layout (see the module docstring).

    Images are JPEG (quality 90) as in BDD100K; labels are PNG train ids.

    Args:
        root (str): Data root; created if missing, existing files with the
            same names are replaced.
        num_train (int): Samples of the train split. Default: 200.
        num_val (int): Samples of the val split. Default: 50.
        height (int): Image rows. Default: 256.
        width (int): Image columns. Default: 512.
        seed (int): Seed of all scenes and names. Default: 0.
        progress (bool): Show an mmengine progress bar. Default: False.

    Returns:
        WrittenDataset: Counts and the written files.
    """
    names = {'train': bdd100k_names(seed, 'train', num_train),
             'val': bdd100k_names(seed, 'val', num_val)}

    def write_sample(split: str, index: int, image: np.ndarray,
                     label: np.ndarray) -> List[str]:
        name = names[split][index]
        files = [osp.join('images', '10k', split, f'{name}.jpg'),
                 osp.join('labels', 'sem_seg', 'masks', split, f'{name}.png')]
        write_image(osp.join(root, files[0]), image,
                    (cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY))
        write_image(osp.join(root, files[1]), label)
        return files

    return _write_splits('bdd100k', root, {'train': num_train,
                                           'val': num_val},
                         height, width, seed, progress, write_sample)


__all__ = ['write_cityscapes', 'write_bdd100k', 'train_ids_to_label_ids',
           'label_id_lut', 'bdd100k_names', 'cityscapes_stem', 'scene_rng',
           'WrittenDataset', 'TRAIN_ID_TO_LABEL_ID', 'CITIES']
