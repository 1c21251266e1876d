"""Routing pictures of one image: panels side by side (the image, MMSeg's
drawing of the labels, a routing map per PatchConvMoE layer), small
images enlarged, as ``tools/analysis_tools/visualize_routing.py`` and
``tools/demo.py`` save them; and the routing of an image in its own
pixels, as the JSON beside the pictures holds it."""
import time
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from mmengine.visualization import Visualizer
from torch import Tensor

from .routing_map import draw_expert_legend, draw_routing_map, routing_cells

MIN_PANEL_HEIGHT = 384  # smaller images are enlarged (nearest) to this
STRIP = 24  # height of the caption and legend strips, pixels
LABEL_MAPS = ('pred_sem_seg', 'gt_sem_seg')


def zoom_factor(image: np.ndarray,
                min_height: int = MIN_PANEL_HEIGHT) -> int:
    """The whole factor that enlarges ``image`` (H, W, 3) to about
    ``min_height`` pixels high (1 for an image as high or higher)."""
    return max(1, min_height // image.shape[0])


def zoom_image(image: np.ndarray, factor: int) -> np.ndarray:
    """``image`` (H, W, 3) enlarged ``factor`` times, nearest neighbour."""
    import mmcv
    return mmcv.imrescale(image, factor, interpolation='nearest')


def zoom_labels(labels: Tensor, factor: int) -> Tensor:
    """A label map (..., H, W) with every pixel repeated ``factor`` times
    along both axes."""
    return labels.repeat_interleave(factor, -2).repeat_interleave(factor, -1)


def zoom_sample(sample, factor: int, keys: Sequence[str] = LABEL_MAPS):
    """A copy of a ``SegDataSample`` (its metainfo and the label maps
    ``keys`` it has, each enlarged ``factor`` times)."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    zoomed = SegDataSample(metainfo=sample.metainfo)
    for key in keys:
        if key in sample:
            labels = zoom_labels(sample.get(key).data, factor)
            zoomed.set_data({key: PixelData(data=labels)})
    return zoomed


def label_panel(visualizer, image: np.ndarray, sample, which: str,
                name: str) -> np.ndarray:
    """``image`` with ``sample``'s ground truth (``which='gt'``) or
    prediction (``'pred'``) drawn by an MMSeg ``SegLocalVisualizer``.

    Args:
        visualizer (SegLocalVisualizer): With the data set's meta.
        image (np.ndarray): RGB image (H, W, 3), uint8.
        sample (SegDataSample): Label maps at the image's size.
        which (str): 'gt' or 'pred'.
        name (str): The drawing's name.

    Returns:
        np.ndarray: The drawing (H, W, 3), RGB uint8.
    """
    visualizer.add_datasample(name, image, sample, draw_gt=which == 'gt',
                              draw_pred=which == 'pred', show=False)
    return visualizer.get_image()


def layer_extent(sample) -> Tuple[float, float]:
    """(height, width), in original image pixels, that a layer's output
    covers: the model input (resized image, plus any padding) mapped back
    to the original image."""
    ori_h, ori_w = sample.ori_shape[:2]
    img_h, img_w = sample.img_shape[:2]
    in_h, in_w = (sample.metainfo.get('pad_shape') or sample.img_shape)[:2]
    return in_h * ori_h / img_h, in_w * ori_w / img_w


def caption(text: str, width: int) -> np.ndarray:
    """A white strip (STRIP, width, 3) with ``text`` at its left."""
    strip = np.full((STRIP, width, 3), 255, np.uint8)
    visualizer = Visualizer(image=strip)
    visualizer.draw_texts(text, np.array([4, STRIP / 2]), colors='black',
                          font_sizes=10, vertical_alignments='center')
    return visualizer.get_image()


def with_captions(panels: Sequence[Tuple[str, np.ndarray]]) -> np.ndarray:
    """Panels of one height side by side, each under its caption.

    Args:
        panels (list[tuple[str, np.ndarray]]): (caption, RGB image).

    Returns:
        np.ndarray: (STRIP + H, sum of widths, 3), RGB uint8.
    """
    return np.concatenate([
        np.concatenate([caption(title, panel.shape[1]), panel], axis=0)
        for title, panel in panels
    ], axis=1)


def routing_picture(image: np.ndarray, sample, layers: Dict[str, object],
                    seg_visualizer, opacity: float) -> np.ndarray:
    """image | prediction | routing map per layer, with captions and an
    expert legend under the routing maps.

    Args:
        image (np.ndarray): The original RGB image (H, W, 3), uint8.
        sample (SegDataSample): MMSeg's prediction of it.
        layers (dict): Path -> PatchConvMoE layer that routed it last.
        seg_visualizer (SegLocalVisualizer): With the data set's meta.
        opacity (float): Opacity of the expert colours.

    Returns:
        np.ndarray: The picture, RGB uint8; small images are enlarged.
    """
    zoom = zoom_factor(image)
    shown = zoom_image(image, zoom)
    prediction = label_panel(seg_visualizer, shown,
                             zoom_sample(sample, zoom, ['pred_sem_seg']),
                             'pred', 'prediction')
    panels = [('image', shown), ('prediction', prediction)]
    extent = tuple(v * zoom for v in layer_extent(sample))
    for path, layer in layers.items():
        drawn = draw_routing_map(shown, layer.last_routing, alpha=opacity,
                                 extent=extent)
        panels.append((f'{path}: {layer.num_experts} experts, '
                       f'top-{layer.top_k}', drawn))
    top = with_captions(panels)
    width = shown.shape[1]
    experts = max(layer.num_experts for layer in layers.values())
    legend = np.full((STRIP, top.shape[1], 3), 255, np.uint8)
    legend[:, 2 * width:] = draw_expert_legend(
        experts, top.shape[1] - 2 * width, height=STRIP)
    return np.concatenate([top, legend], axis=0)


def routing_beside_labels(image: np.ndarray, sample, record,
                          dataset_meta: dict,
                          save_dir: Optional[str] = None) -> np.ndarray:
    """routing map | ground truth | prediction of one image, small
    images enlarged.

    Args:
        image (np.ndarray): The original RGB image (H, W, 3), uint8.
        sample (SegDataSample): Its prediction and ground truth.
        record (RoutingRecord): A layer's routing of the image alone.
        dataset_meta (dict): The data set's ``classes`` and ``palette``.
        save_dir (str, optional): MMEngine's ``LocalVisBackend`` also
            saves the ground truth and prediction drawings there
            (``vis_data/vis_image/{gt,pred}_0.png``).

    Returns:
        np.ndarray: The picture, RGB uint8.
    """
    from mmseg.visualization import SegLocalVisualizer
    backends = None if save_dir is None else [dict(type='LocalVisBackend')]
    visualizer = SegLocalVisualizer(
        name=f'routing_beside_labels_{time.time_ns()}', alpha=0.6,
        vis_backends=backends, save_dir=save_dir)
    visualizer.dataset_meta = dataset_meta
    zoom = zoom_factor(image)
    shown = zoom_image(image, zoom)
    zoomed = zoom_sample(sample, zoom)
    panels = [draw_routing_map(shown, record)]
    for which in ('gt', 'pred'):
        panels.append(label_panel(visualizer, shown, zoomed, which, which))
    return np.concatenate(panels, axis=1)


def routing_summary(sample, layers: Dict[str, object]) -> dict:
    """Per layer: grid, and per cell its box (original image pixels),
    experts and weights.

    Args:
        sample (SegDataSample): MMSeg's prediction of the image (its
            shapes).
        layers (dict): Path -> PatchConvMoE layer that routed it last.

    Returns:
        dict: Path -> ``grid`` [rows, cols] and ``cells`` (``box`` [x0,
        y0, x1, y1], ``experts``, ``weights``, rounded).
    """
    extent = layer_extent(sample)
    summary = {}
    for path, layer in layers.items():
        record = layer.last_routing
        cells = routing_cells(record, 0, sample.ori_shape[:2], extent)
        summary[path] = dict(
            grid=list(record.grid[1:]),
            cells=[
                dict(box=[round(v, 2) for v in cell['box']],
                     experts=cell['experts'],
                     weights=[round(w, 4) for w in cell['weights']])
                for cell in cells
            ])
    return summary


__all__ = [
    'MIN_PANEL_HEIGHT', 'STRIP', 'zoom_factor', 'zoom_image', 'zoom_labels',
    'zoom_sample', 'label_panel', 'layer_extent', 'caption',
    'with_captions', 'routing_picture', 'routing_beside_labels',
    'routing_summary'
]
