"""A small ENet head and a batch of generated street scenes, shared by
test_enet.py and test_patch_moe_segmentor.py."""
from typing import Tuple

import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from moe_seg_plugin.datasets import generate_scene

HEAD = dict(type='ENetHead', in_channels=16, channels=16, num_classes=19,
            norm_cfg=dict(type='BN'), align_corners=False)


def street_batch(count: int = 4, size: Tuple[int, int] = (64, 128)):
    """``count`` generated street scenes of ``size`` as a segmentor's
    (images, data samples with gt_sem_seg)."""
    rng = np.random.default_rng(0)
    images, samples = [], []
    for _ in range(count):
        image, label = generate_scene(rng, *size)
        images.append(torch.from_numpy(image).permute(2, 0, 1).float())
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.from_numpy(label.astype(np.int64))[None])
        sample.set_metainfo(dict(img_shape=size, pad_shape=size))
        samples.append(sample)
    return images, samples
