"""MMSeg's ground truth under a MoE layer's cells: padding and flip from
the data samples' metainfo, the crops of slide inference, and the class
counts of one image over all runs of a layer."""
import dataclasses

import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from torch import nn

from moe_seg_plugin.engine.routing_labels import (flip_of,
                                                  image_class_counts,
                                                  inference_windows,
                                                  label_cells, padding_of,
                                                  sample_cells,
                                                  slide_windows)
from moe_seg_plugin.moe import PatchConvMoE

N = 4
#: The cells of a 4x4 output cut by a 2x2 grid, at the output's pixels.
CELLS = torch.tensor([[0, 0, 1, 1]] * 2 + [[2, 2, 3, 3]] * 2)


def _record_with_cells(grid=(2, 2), size=(4, 4), batch=1):
    """A routing of a (batch, 3, *size) input through a 1x1 conv."""
    layer = PatchConvMoE(nn.Conv2d(3, 3, 1), num_experts=N, top_k=1,
                         grid=grid)
    layer(torch.randn(batch, 3, *size))
    return layer.last_routing


def _sample(label: torch.Tensor, **metainfo) -> SegDataSample:
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=label[None])
    sample.set_metainfo(metainfo)
    return sample


def test_label_cells_identity_scale_padding_flip_and_window():
    record = _record_with_cells()  # 4x4 output, cells of 2x2 pixels
    expected = CELLS
    assert torch.equal(label_cells(record, (4, 4), (4, 4)), expected)
    # A label at twice the size: each cell covers 4x4 label pixels.
    big = label_cells(record, (8, 8), (4, 4))
    assert torch.equal(big, expected.repeat_interleave(2, 0)
                       .repeat_interleave(2, 1))
    # Input padded by 2 columns on the right: the 2x2 unpadded input holds
    # the label, its pixels all in the left cells' columns 0-1.
    padded = label_cells(record, (4, 2), (4, 4), padding=(0, 2, 0, 0))
    assert torch.equal(padded, expected[:, :2])
    flipped = label_cells(record, (4, 4), (4, 4), flip='horizontal')
    assert torch.equal(flipped, expected.flip(1))
    # The layer saw only the right half (a slide crop of 4x2 input pixels).
    half = label_cells(record, (4, 4), (4, 4), window=(0, 4, 2, 4))
    assert (half[:, :2] == -1).all()
    assert torch.equal(half[:, 2:], torch.tensor([[0, 1]] * 2 + [[2, 3]] * 2))


def test_label_cells_vertical_flip_and_top_padding():
    record = _record_with_cells()
    flipped = label_cells(record, (4, 4), (4, 4), flip='vertical')
    assert torch.equal(flipped, CELLS.flip(0))
    # Padded by 2 rows at the top: the label lies in the bottom cells.
    padded = label_cells(record, (2, 4), (4, 4), padding=(0, 0, 2, 0))
    assert torch.equal(padded, CELLS[2:])


def test_padding_and_flip_read_as_mmseg_writes_them():
    assert padding_of(dict(img_padding_size=[1, 2, 3, 4])) == [1, 2, 3, 4]
    assert padding_of(dict(padding_size=(0, 5, 0, 6))) == (0, 5, 0, 6)
    # img_padding_size (the data preprocessor's) wins over padding_size.
    assert padding_of(dict(img_padding_size=(1, 1, 1, 1),
                           padding_size=(2, 2, 2, 2))) == (1, 1, 1, 1)
    assert padding_of({}) == (0, 0, 0, 0)
    assert flip_of(dict(flip=True, flip_direction='vertical')) == 'vertical'
    assert flip_of(dict(flip=False, flip_direction='horizontal')) is None
    assert flip_of({}) is None


def test_sample_cells_use_the_sample_metainfo():
    record = _record_with_cells()
    label = torch.zeros(4, 2, dtype=torch.long)
    sample = _sample(label, img_padding_size=(2, 0, 0, 0), flip=True,
                     flip_direction='horizontal')
    cells = sample_cells(record, sample, (4, 4))
    assert torch.equal(cells, label_cells(record, (4, 2), (4, 4),
                                          (2, 0, 0, 0), 'horizontal'))
    # Padded on the left: the label lies in the right cells.
    assert torch.equal(cells, CELLS[:, 2:])


def test_slide_windows_cover_the_input_like_mmseg():
    windows = slide_windows((64, 128), (32, 64), (24, 48))
    # rows: 0, 24, then clipped to 32; cols: 0, 48, then clipped to 64.
    assert windows == [(y, y + 32, x, x + 64) for y in (0, 24, 32)
                       for x in (0, 48, 64)]
    assert slide_windows((20, 30), (32, 64), (24, 48)) == [(0, 20, 0, 30)]


def test_inference_windows_by_test_cfg_mode():
    assert inference_windows({}, (64, 128)) == [None]
    assert inference_windows(dict(mode='whole'), (64, 128)) == [None]
    slide = dict(mode='slide', crop_size=[32, 64], stride=[24, 48])
    assert inference_windows(slide, (64, 128)) == slide_windows(
        (64, 128), (32, 64), (24, 48))


def test_image_class_counts_over_two_crops():
    """Two runs, each seeing one half of the input: every label pixel
    counts once in the pixels and once in the slots (of the run that saw
    it)."""
    record = dataclasses.replace(
        _record_with_cells(batch=2),
        experts=torch.tensor([[0], [1], [2], [3], [3], [3], [1], [1]]),
        top_k=1)
    label = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 255], [2, 2, 2, 2],
                          [2, 2, 2, 2]])
    windows = [(0, 4, 0, 2), (0, 4, 2, 4)]
    pixels, slots = image_class_counts([record, record], windows,
                                       _sample(label), 1, (4, 4), 3)
    assert pixels.tolist() == [4, 3, 8]
    # Image 1: cells 0,1 -> expert 3; cells 2,3 -> expert 1. Each run
    # spreads its half of the label over all of its output, so the rows
    # decide: rows 0-1 go to expert 3, rows 2-3 to expert 1.
    expected = [[0, 0, 0, 4], [0, 0, 0, 3], [0, 8, 0, 0]]
    assert slots.tolist() == expected
    _, whole = image_class_counts([record], [None], _sample(label), 1,
                                  (4, 4), 3)
    assert whole.tolist() == expected
