"""Routing pictures: zoomed label maps, the layer's extent, the panels of
visualize_routing.py and the demo, and the routing summary."""
from types import SimpleNamespace

import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from moe_seg_plugin.moe import RoutingRecord
from moe_seg_plugin.visualization.routing_map import draw_routing_map
from moe_seg_plugin.visualization.routing_picture import (
    STRIP, layer_extent, routing_beside_labels, routing_picture,
    routing_summary, zoom_labels, zoom_sample)

META = dict(classes=('road', 'car', 'sky'),
            palette=[[128, 64, 128], [0, 0, 142], [70, 130, 180]])


def _record() -> RoutingRecord:
    """A 2x2 grid over a 4x4 layer output, top-2 of 8 experts."""
    experts = torch.tensor([[0, 1], [2, 3], [4, 5], [6, 7]])
    logits = torch.zeros(4, 8)
    return RoutingRecord(
        logits, logits.softmax(1), experts,
        torch.tensor([[0.75, 0.25], [0.5, 0.5], [0.6, 0.4], [0.9, 0.1]]),
        (1, 2, 2), 2, row_starts=(0, 2), row_sizes=(2, 2),
        col_starts=(0, 2), col_sizes=(2, 2), out_size=(4, 4))


def _layer() -> SimpleNamespace:
    return SimpleNamespace(last_routing=_record(), num_experts=8, top_k=2)


def _sample(height: int = 64, width: int = 128, **meta) -> SegDataSample:
    """A prediction and ground truth of a ``height`` x ``width`` image."""
    sample = SegDataSample(metainfo=dict(
        dict(ori_shape=(height, width), img_shape=(height, width)), **meta))
    labels = torch.arange(height * width).reshape(1, height, width) % 3
    sample.pred_sem_seg = PixelData(data=labels)
    sample.gt_sem_seg = PixelData(data=labels.flip(-1))
    return sample


def _image(height: int = 64, width: int = 128) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3),
                                             dtype=np.uint8)


def _visualizer():
    from mmseg.visualization import SegLocalVisualizer
    visualizer = SegLocalVisualizer(name='test_routing_picture', alpha=0.6)
    visualizer.dataset_meta = META
    return visualizer


def test_labels_are_repeated_along_both_axes():
    labels = torch.tensor([[[0, 1, 2], [3, 4, 5]]])
    zoomed = zoom_labels(labels, 2)
    assert zoomed.shape == (1, 4, 6)
    assert zoomed[0, :2, :2].eq(0).all() and zoomed[0, 2:, 4:].eq(5).all()


def test_a_zoomed_sample_is_a_copy_with_the_label_maps_asked_for():
    sample = _sample(4, 6, pad_shape=(8, 8))
    zoomed = zoom_sample(sample, 3, ['pred_sem_seg'])
    assert zoomed.pred_sem_seg.data.shape == (1, 12, 18)
    assert 'gt_sem_seg' not in zoomed
    assert zoomed.metainfo['pad_shape'] == (8, 8)
    assert sample.pred_sem_seg.data.shape == (1, 4, 6)  # untouched
    both = zoom_sample(sample, 2)
    assert both.gt_sem_seg.data.shape == (1, 8, 12)


def test_the_extent_maps_the_padded_input_back_to_the_image():
    # 64x128 resized to 128x256, padded to 130x260: the layer sees 65x130
    # of the original image's pixels.
    sample = SegDataSample(metainfo=dict(
        ori_shape=(64, 128), img_shape=(128, 256), pad_shape=(130, 260)))
    assert layer_extent(sample) == (65.0, 130.0)
    del sample.pad_shape
    assert layer_extent(sample) == (64.0, 128.0)


def test_the_picture_is_image_prediction_and_one_map_per_layer():
    image = _image(96, 32)  # enlarged 4 times, to 384 rows
    layers = {'a': _layer(), 'b': _layer()}
    drawn = routing_picture(image, _sample(96, 32), layers, _visualizer(),
                            0.45)
    shown = image.repeat(4, 0).repeat(4, 1)
    width = 32 * 4
    assert drawn.shape == (STRIP + 384 + STRIP, 4 * width, 3)
    panel = drawn[STRIP:STRIP + 384]
    assert (panel[:, :width] == shown).all()
    expected = draw_routing_map(shown, _record(), alpha=0.45,
                                extent=(384.0, 128.0))
    assert (panel[:, 2 * width:3 * width] == expected).all()
    legend = drawn[-STRIP:]
    assert (legend[:, :2 * width] == 255).all()  # no legend under those
    assert (legend[:, 2 * width:] != 255).any()


def test_routing_beside_labels_draws_three_panels(tmp_path):
    """routing | ground truth | prediction; MMEngine's LocalVisBackend
    saves the label drawings in ``save_dir``."""
    image, sample = _image(96, 32), _sample(96, 32)
    drawn = routing_beside_labels(image, sample, _record(), META,
                                  str(tmp_path))
    assert drawn.shape == (384, 3 * 128, 3)
    assert (drawn[:, :128] == draw_routing_map(
        image.repeat(4, 0).repeat(4, 1), _record())).all()
    assert (drawn[:, 128:256] != drawn[:, 256:]).any()  # gt != pred
    saved = sorted(p.name for p in tmp_path.rglob('*.png'))
    assert saved == ['gt_0.png', 'pred_0.png']


def test_the_summary_gives_cells_in_original_image_pixels():
    sample = _sample(64, 128, img_shape=(128, 256), pad_shape=(128, 256))
    summary = routing_summary(sample, {'a': _layer()})
    assert summary['a']['grid'] == [2, 2]
    cells = summary['a']['cells']
    assert [c['box'] for c in cells] == [[0, 0, 64, 32], [64, 0, 128, 32],
                                         [0, 32, 64, 64],
                                         [64, 32, 128, 64]]
    assert cells[3] == dict(box=[64, 32, 128, 64], experts=[6, 7],
                            weights=[0.9, 0.1])
