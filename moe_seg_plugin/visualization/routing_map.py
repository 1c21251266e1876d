"""Routing maps: which expert each patch went to, drawn over the image."""
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


def routing_cells(record: RoutingRecord, image_index: int,
                  image_size: Tuple[int, int]) -> List[dict]:
    """The grid cells of one image with their experts, in image pixels.

    Args:
        record (RoutingRecord): A layer's routing of a batch.
        image_index (int): Which image of the batch.
        image_size (tuple): (height, width) of the picture to draw on.

    Returns:
        list[dict]: Per cell ``box`` (x0, y0, x1, y1), ``experts`` and
        ``weights`` (highest weight first).
    """
    _, rows, cols = record.grid
    scale_y = image_size[0] / record.out_size[0]
    scale_x = image_size[1] / record.out_size[1]
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


def draw_routing_map(image: np.ndarray,
                     record: RoutingRecord,
                     image_index: int = 0,
                     palette: Optional[Sequence[tuple]] = None,
                     alpha: float = 0.45) -> np.ndarray:
    """Colour each patch by its first expert and label it with its choices.

    Args:
        image (np.ndarray): RGB image (H, W, 3), uint8.
        record (RoutingRecord): The layer's routing for a batch holding the
            image.
        image_index (int): The image's index in that batch.
        palette (list[tuple], optional): RGB colour per expert.
        alpha (float): Opacity of the patch colours.

    Returns:
        np.ndarray: The drawing, RGB uint8.
    """
    palette = list(palette or EXPERT_PALETTE)
    cells = routing_cells(record, image_index, image.shape[:2])
    height, width = image.shape[:2]
    for cell in cells:  # keep the outlines inside the picture
        x0, y0, x1, y1 = cell['box']
        cell['box'] = (x0, y0, min(x1, width - 1), min(y1, height - 1))
    visualizer = Visualizer(image=image)
    boxes = np.array([cell['box'] for cell in cells])
    colours = [palette[cell['experts'][0] % len(palette)] for cell in cells]
    visualizer.draw_bboxes(boxes, edge_colors='white', face_colors=colours,
                           alpha=alpha, line_widths=1)
    labels = [
        ' '.join(f'E{e}:{w:.2f}'
                 for e, w in zip(cell['experts'], cell['weights']))
        for cell in cells
    ]
    positions = np.array([[cell['box'][0] + 3, cell['box'][1] + 3]
                          for cell in cells])
    size = max(7, min(image.shape[:2]) // 28)
    visualizer.draw_texts(labels, positions, colors='white',
                          font_sizes=size,
                          bboxes=[dict(facecolor='black', alpha=0.5,
                                       pad=1, edgecolor='none')] *
                          len(labels))
    return visualizer.get_image()
