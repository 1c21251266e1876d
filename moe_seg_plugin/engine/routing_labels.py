"""Where MMSeg's ground truth lies under a MoE layer's grid cells.

The core (:mod:`moe_seg_plugin.moe.statistics`) maps label pixels to grid
cells from plain sizes and offsets. This module reads those from MMSeg:
the padding and flip a data sample's metainfo records, and the crops of
MMSeg's slide inference (``test_cfg.mode='slide'``), so that
:class:`RoutingStatsHook` can count P(expert | class).
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..moe.routing import RoutingRecord
from ..moe.statistics import axis_cells, class_expert_counts, grid_cells

#: (y1, y2, x1, x2) of the network input one run of a layer saw.
Window = Tuple[int, int, int, int]


def padding_of(metainfo: dict) -> Sequence[int]:
    """The padding of a data sample's input, read as MMSeg's
    ``postprocess_result`` reads it.

    Args:
        metainfo (dict): The data sample's metainfo.

    Returns:
        sequence[int]: (left, right, top, bottom).
    """
    if 'img_padding_size' in metainfo:
        return metainfo['img_padding_size']
    return metainfo.get('padding_size', (0, 0, 0, 0))


def flip_of(metainfo: dict) -> Optional[str]:
    """How a data sample's input was flipped (MMSeg's ``RandomFlip`` and
    test-time augmentation record it).

    Args:
        metainfo (dict): The data sample's metainfo.

    Returns:
        str, optional: 'horizontal' or 'vertical'; None if not flipped.
    """
    return metainfo.get('flip_direction') if metainfo.get('flip') else None


def label_cells(record: RoutingRecord,
                label_size: Tuple[int, int],
                input_size: Tuple[int, int],
                padding: Sequence[int] = (0, 0, 0, 0),
                flip: Optional[str] = None,
                window: Optional[Sequence[int]] = None,
                device: Optional[torch.device] = None) -> Tensor:
    """The grid cell each label pixel lies in.

    The label covers the unpadded part of the network input (MMSeg resizes
    predictions back to the label size the same way); the layer's output
    covers ``window`` of the input (all of it, or a slide-inference crop)
    and is cut into the record's cells.

    Args:
        record (RoutingRecord): The layer's routing (cells in its output
            pixels).
        label_size (tuple): (height, width) of the label.
        input_size (tuple): (height, width) of the network input (padded).
        padding (sequence): Padding of the input (left, right, top,
            bottom), as MMSeg's ``img_padding_size``.
        flip (str, optional): 'horizontal' or 'vertical' if the input was
            flipped.
        window (sequence, optional): (y1, y2, x1, x2) of the input the
            layer saw. Default: the whole input.
        device (torch.device, optional): Device of the result.

    Returns:
        Tensor: (H_label, W_label) long, the cell index within one image's
        grid (row-major), -1 outside the window.
    """
    height, width = input_size
    y1, y2, x1, x2 = window if window is not None else (0, height, 0, width)
    left, right, top, bottom = padding
    rows = axis_cells(label_size[0], (top, height - bottom), (y1, y2),
                      record.out_size[0], record.row_starts,
                      reverse=flip == 'vertical', device=device)
    cols = axis_cells(label_size[1], (left, width - right), (x1, x2),
                      record.out_size[1], record.col_starts,
                      reverse=flip == 'horizontal', device=device)
    return grid_cells(rows, cols, len(record.col_starts))


def sample_cells(record: RoutingRecord, sample, input_size: Tuple[int, int],
                 window: Optional[Window] = None) -> Tensor:
    """:func:`label_cells` for an MMSeg data sample's ground truth, with
    the padding and flip its metainfo records.

    Args:
        record (RoutingRecord): The layer's routing.
        sample (SegDataSample): With ``gt_sem_seg`` (1, H, W).
        input_size (tuple): (height, width) of the network input.
        window (tuple, optional): (y1, y2, x1, x2) the layer saw.

    Returns:
        Tensor: (H, W) long, as :func:`label_cells`.
    """
    label = sample.gt_sem_seg.data[0]
    return label_cells(record, tuple(label.shape), input_size,
                       padding_of(sample.metainfo), flip_of(sample.metainfo),
                       window, device=label.device)


def slide_windows(input_size: Tuple[int, int], crop_size: Tuple[int, int],
                  stride: Tuple[int, int]) -> List[Window]:
    """The crops of MMSeg's slide inference, in the order it runs them.

    Args:
        input_size (tuple): (height, width) of the network input.
        crop_size (tuple): ``test_cfg.crop_size`` (height, width).
        stride (tuple): ``test_cfg.stride`` (height, width).

    Returns:
        list[tuple]: (y1, y2, x1, x2) per crop.
    """
    height, width = input_size
    crop_h, crop_w = crop_size
    stride_h, stride_w = stride
    rows = max(height - crop_h + stride_h - 1, 0) // stride_h + 1
    cols = max(width - crop_w + stride_w - 1, 0) // stride_w + 1
    windows = []
    for i in range(rows):
        for j in range(cols):
            y2 = min(i * stride_h + crop_h, height)
            x2 = min(j * stride_w + crop_w, width)
            windows.append((max(y2 - crop_h, 0), y2, max(x2 - crop_w, 0), x2))
    return windows


def inference_windows(test_cfg: dict,
                      input_size: Tuple[int, int]) -> List[Optional[Window]]:
    """The part of the input each run of a layer sees in one inference
    of a segmentor with this ``test_cfg``.

    Args:
        test_cfg (dict): The segmentor's ``test_cfg`` (``mode`` 'whole' or
            'slide', with ``crop_size`` and ``stride`` for 'slide').
        input_size (tuple): (height, width) of the network input.

    Returns:
        list: One (y1, y2, x1, x2) per crop in slide inference; ``[None]``
        (the whole input, one run) otherwise.
    """
    if test_cfg.get('mode', 'whole') != 'slide':
        return [None]
    return slide_windows(input_size, tuple(test_cfg['crop_size']),
                         tuple(test_cfg['stride']))


def image_class_counts(records: Sequence[RoutingRecord],
                       windows: Sequence[Optional[Window]], sample,
                       image_index: int, input_size: Tuple[int, int],
                       num_classes: int) -> Tuple[Tensor, Tensor]:
    """Label pixels per class, and pixel-slots per class and expert over
    all runs of one layer, for one image of a batch.

    Args:
        records (sequence[RoutingRecord]): The layer's runs on the batch.
        windows (sequence): The window of each run, from
            :func:`inference_windows`.
        sample (SegDataSample): The image's data sample, with
            ``gt_sem_seg``.
        image_index (int): The image's index in the batch.
        input_size (tuple): (height, width) of the network input.
        num_classes (int): C; label values outside [0, C) are left out.

    Returns:
        tuple[Tensor, Tensor]: Pixels per class (C,) and pixel-slots per
        class and expert (C, N). A label pixel counts once in the pixels
        and once per run whose window covers it in the pixel-slots.
    """
    label = sample.gt_sem_seg.data[0]
    valid = label[(label >= 0) & (label < num_classes)].long()
    pixels = torch.bincount(valid, minlength=num_classes)
    slots = 0
    for record, window in zip(records, windows):
        cells = sample_cells(record, sample, input_size, window)
        slots = slots + class_expert_counts(record, image_index, cells,
                                            label, num_classes)[1]
    return pixels, slots
