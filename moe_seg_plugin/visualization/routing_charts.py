"""Charts of routing statistics: expert usage bars and the P(expert | class)
heat map, drawn with matplotlib's Agg canvas (no display, no global
backend change)."""
from typing import Optional, Sequence

import mmcv
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .routing_map import EXPERT_PALETTE


def _to_rgb(figure: Figure) -> np.ndarray:
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def usage_chart(usage: Sequence[float],
                title: str = '',
                importance: Optional[Sequence[float]] = None) -> np.ndarray:
    """Bars of each expert's share of the top-k slots.

    A dashed line marks uniform usage (1/N), a dotted one the dead-expert
    threshold (1/(10N)).

    Args:
        usage (sequence[float]): Share per expert (sums to 1).
        title (str): Chart title.
        importance (sequence[float], optional): Share of the gate
            probability mass per expert, drawn as black markers.

    Returns:
        np.ndarray: RGB image (H, W, 3), uint8.
    """
    num = len(usage)
    figure = Figure(figsize=(max(4.0, 0.5 * num + 2), 3.2), dpi=100)
    axes = figure.add_subplot()
    colours = [
        tuple(c / 255 for c in EXPERT_PALETTE[i % len(EXPERT_PALETTE)])
        for i in range(num)
    ]
    experts = np.arange(num)
    axes.bar(experts, usage, color=colours, edgecolor='black', linewidth=0.5,
             label='usage (top-k slots)')
    axes.axhline(1 / num, color='grey', linestyle='--', linewidth=1,
                 label='uniform 1/N')
    axes.axhline(1 / (10 * num), color='red', linestyle=':', linewidth=1,
                 label='dead below 1/(10N)')
    if importance is not None:
        axes.plot(experts, importance, 'kD', markersize=4,
                  label='gate mass share')
    axes.set_xticks(experts, [f'E{i}' for i in experts])
    axes.set_ylim(0, max(1.05 * max(max(usage), 1 / num), 0.05))
    axes.set_ylabel('share')
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=7, loc='upper right')
    figure.tight_layout()
    return _to_rgb(figure)


def class_heat_map(matrix: Sequence[Sequence[float]],
                   classes: Sequence[str],
                   title: str = '',
                   class_pixels: Optional[Sequence[int]] = None
                   ) -> np.ndarray:
    """Heat map of P(expert | class): one row per class, one column per
    expert, each cell annotated with its value.

    Args:
        matrix (sequence): C x N values, rows summing to 1.
        classes (sequence[str]): The C class names.
        title (str): Chart title.
        class_pixels (sequence[int], optional): Label pixels per class;
            classes without pixels are marked "(absent)".

    Returns:
        np.ndarray: RGB image (H, W, 3), uint8.
    """
    values = np.asarray(matrix, dtype=float)
    if values.ndim != 2 or values.shape[0] != len(classes):
        raise ValueError(f'class_heat_map: matrix must be C x N with C = '
                         f'{len(classes)} classes, got shape {values.shape}')
    rows, cols = values.shape
    labels = list(classes)
    if class_pixels is not None:
        labels = [
            name if pixels else f'{name} (absent)'
            for name, pixels in zip(classes, class_pixels)
        ]
    figure = Figure(figsize=(0.55 * cols + 3.2, 0.3 * rows + 1.6), dpi=100)
    axes = figure.add_subplot()
    image = axes.imshow(values, cmap='viridis', vmin=0, vmax=1,
                        aspect='auto')
    axes.set_xticks(range(cols), [f'E{i}' for i in range(cols)])
    axes.set_yticks(range(rows), labels, fontsize=7)
    for i in range(rows):
        for j in range(cols):
            value = values[i, j]
            axes.text(j, i, f'{value:.2f}', ha='center', va='center',
                      fontsize=6, color='black' if value > 0.6 else 'white')
    axes.set_xlabel('expert')
    axes.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axes, fraction=0.05)
    figure.tight_layout()
    return _to_rgb(figure)


def save_png(image: np.ndarray, path: str) -> None:
    """Write an RGB image as PNG (creating folders as needed)."""
    mmcv.imwrite(image[..., ::-1], path)
