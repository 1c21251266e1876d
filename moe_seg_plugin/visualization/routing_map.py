"""Routing maps: which expert(s) each patch went to, drawn over the image.

Each grid cell is split into vertical bands, one per chosen expert, as wide
as the expert's mixing weight and tinted in the expert's colour; the cell's
label lists its experts and weights (``E3 0.62``), highest first.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmengine.visualization import Visualizer

from ..moe import RoutingRecord

#: One colour per expert (RGB), repeated for more than 16 experts.
EXPERT_PALETTE = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
    (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230),
    (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195),
]
Box = Tuple[float, float, float, float]


def expert_colour(expert: int,
                  palette: Optional[Sequence[tuple]] = None) -> tuple:
    """The RGB colour of ``expert`` (the palette repeats)."""
    palette = list(palette or EXPERT_PALETTE)
    return tuple(palette[expert % len(palette)])


def routing_cells(record: RoutingRecord,
                  image_index: int,
                  image_size: Tuple[int, int],
                  extent: Optional[Tuple[float, float]] = None
                  ) -> List[dict]:
    """The grid cells of one image with their experts, in image pixels.

    Args:
        record (RoutingRecord): A layer's routing of a batch.
        image_index (int): Which image of the batch.
        image_size (tuple): (height, width) of the picture to draw on.
        extent (tuple, optional): (height, width), in the picture's pixels,
            that the layer's whole output covers; default ``image_size``.
            Larger when the model's input was padded beyond the image.

    Returns:
        list[dict]: Per cell ``box`` (x0, y0, x1, y1), ``experts`` and
        ``weights`` (highest weight first).
    """
    batch, rows, cols = record.grid
    if not 0 <= image_index < batch:
        raise ValueError(f'image_index {image_index} is outside the routed '
                         f'batch of {batch} image(s)')
    height, width = extent or image_size
    scale_y = height / record.out_size[0]
    scale_x = width / record.out_size[1]
    first = image_index * rows * cols
    experts = record.experts[first:first + rows * cols].tolist()
    weights = record.weights[first:first + rows * cols].tolist()
    cells = []
    for i in range(rows):
        for j in range(cols):
            top, left = record.row_starts[i], record.col_starts[j]
            box = (left * scale_x, top * scale_y,
                   (left + record.col_sizes[j]) * scale_x,
                   (top + record.row_sizes[i]) * scale_y)
            index = i * cols + j
            cells.append(dict(box=box, experts=experts[index],
                              weights=weights[index]))
    return cells


def weight_bands(cell: dict) -> List[Tuple[int, float, Box]]:
    """Split a cell into vertical bands, one per chosen expert, as wide as
    its weight (left to right, highest weight first).

    Args:
        cell (dict): A cell of :func:`routing_cells`.

    Returns:
        list[tuple]: (expert, weight, box) per band.
    """
    x0, y0, x1, y1 = cell['box']
    total = sum(cell['weights']) or 1.0
    bands, left, done = [], x0, 0.0
    for expert, weight in zip(cell['experts'], cell['weights']):
        done += weight
        right = x0 + (x1 - x0) * done / total
        bands.append((expert, weight, (left, y0, right, y1)))
        left = right
    return bands


def _pixels(box: Box, height: int, width: int) -> Tuple[int, int, int, int]:
    """Integer pixel bounds of a box, clipped to the picture."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return (min(max(x0, 0), width), min(max(y0, 0), height),
            min(max(x1, 0), width), min(max(y1, 0), height))


def _text_colour(colour: tuple) -> str:
    """Black or white, whichever reads better on ``colour``."""
    luma = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    return 'black' if luma > 140 else 'white'


def draw_routing_map(image: np.ndarray,
                     record: RoutingRecord,
                     image_index: int = 0,
                     palette: Optional[Sequence[tuple]] = None,
                     alpha: float = 0.45,
                     extent: Optional[Tuple[float, float]] = None,
                     labels: bool = True) -> np.ndarray:
    """Tint each patch in the colours of its chosen experts, one band per
    expert as wide as its weight, and label it with its choices.

    A pixel of a band becomes ``(1 - alpha) * pixel + alpha * colour``
    (rounded); cell outlines are white; labels (``E3 0.62`` per expert, on
    the expert's colour) are left out of cells too small to hold them.

    Args:
        image (np.ndarray): RGB image (H, W, 3), uint8.
        record (RoutingRecord): The layer's routing for a batch holding the
            image.
        image_index (int): The image's index in that batch.
        palette (list[tuple], optional): RGB colour per expert.
        alpha (float): Opacity of the expert colours.
        extent (tuple, optional): (height, width), in the image's pixels,
            that the layer's whole output covers (see
            :func:`routing_cells`); default: the image's size.
        labels (bool): Write each cell's experts and weights.

    Returns:
        np.ndarray: The drawing (same size as ``image``), RGB uint8.
    """
    height, width = image.shape[:2]
    cells = routing_cells(record, image_index, (height, width), extent)
    tinted = image.astype(np.float32)
    for cell in cells:
        for expert, _, box in weight_bands(cell):
            x0, y0, x1, y1 = _pixels(box, height, width)
            colour = np.array(expert_colour(expert, palette), np.float32)
            tinted[y0:y1, x0:x1] = ((1 - alpha) * tinted[y0:y1, x0:x1] +
                                    alpha * colour)
    visualizer = Visualizer(image=np.round(tinted).astype(np.uint8))
    outlines = []
    for cell in cells:
        x0, y0, x1, y1 = _pixels(cell['box'], height, width)
        if x1 > x0 and y1 > y0:  # keep the outlines inside the picture
            outlines.append((x0, y0, min(x1, width - 1), min(y1, height - 1)))
    if outlines:
        visualizer.draw_bboxes(np.array(outlines), edge_colors='white',
                               alpha=0.8, line_widths=1)
    if labels:
        _draw_labels(visualizer, cells, palette, height, width)
    return visualizer.get_image()


def _draw_labels(visualizer: Visualizer, cells: List[dict],
                 palette: Optional[Sequence[tuple]], height: int,
                 width: int) -> None:
    """One ``E<i> <weight>`` line per chosen expert at a cell's top left."""
    size = max(7, min(height, width) // 28)
    # Sizes in pixels of a line and of 'E0 0.62' (points at dpi 100, box
    # padding included).
    line, text_width = size * 1.9, size * 5.8 + 4
    texts, positions, colours, boxes = [], [], [], []
    for cell in cells:
        x0, y0, x1, y1 = cell['box']
        lines = len(cell['experts'])
        if x1 - x0 < text_width or y1 - y0 < line * lines + 2:
            continue  # too small to hold the labels
        for row, (expert, weight) in enumerate(
                zip(cell['experts'], cell['weights'])):
            colour = expert_colour(expert, palette)
            texts.append(f'E{expert} {weight:.2f}')
            positions.append((x0 + 3, y0 + 3 + row * line))
            colours.append(_text_colour(colour))
            boxes.append(dict(facecolor=tuple(c / 255 for c in colour),
                              alpha=0.85, pad=1, edgecolor='none'))
    if texts:
        visualizer.draw_texts(texts, np.array(positions), colors=colours,
                              font_sizes=size, bboxes=boxes)


def draw_expert_legend(num_experts: int,
                       width: int,
                       palette: Optional[Sequence[tuple]] = None,
                       height: int = 24) -> np.ndarray:
    """A strip naming each expert's colour: ``E0``, ``E1``, ... on swatches.

    Args:
        num_experts (int): Experts to list.
        width (int): Width of the strip in pixels.
        palette (list[tuple], optional): RGB colour per expert.
        height (int): Height of the strip in pixels.

    Returns:
        np.ndarray: The strip (height, width, 3), RGB uint8, white
        background; each swatch is ``width / num_experts`` pixels wide.
    """
    strip = np.full((height, width, 3), 255, np.uint8)
    step = width / max(num_experts, 1)
    for expert in range(num_experts):
        x0, x1 = int(round(expert * step)), int(round((expert + 1) * step))
        strip[2:height - 2, x0 + 1:max(x0 + 2, x1 - 1)] = expert_colour(
            expert, palette)
    if step < 14:  # too narrow to name the experts
        return strip
    visualizer = Visualizer(image=strip)
    size = max(6, min(int(height * 0.4), int(step / 3.5)))
    visualizer.draw_texts(
        [f'E{expert}' for expert in range(num_experts)],
        np.array([((expert + 0.5) * step, height / 2)
                  for expert in range(num_experts)]),
        colors=[_text_colour(expert_colour(e, palette))
                for e in range(num_experts)],
        font_sizes=size, vertical_alignments='center',
        horizontal_alignments='center')
    return visualizer.get_image()
