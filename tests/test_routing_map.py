"""Routing maps: cell boxes, weight bands, tint colours, legend."""
import numpy as np
import pytest
import torch

from moe_seg_plugin.moe import RoutingRecord
from moe_seg_plugin.visualization.routing_map import (EXPERT_PALETTE,
                                                      draw_expert_legend,
                                                      draw_routing_map,
                                                      routing_cells,
                                                      weight_bands)

GREY = 100
ALPHA = 0.5


def _record(experts, weights, batch=1):
    """A 2x2 grid over a 4x4 layer output (cells of 2x2 output pixels)."""
    experts = torch.tensor(experts)
    logits = torch.zeros(experts.shape[0], 8)
    return RoutingRecord(
        logits, logits.softmax(1), experts, torch.tensor(weights),
        (batch, 2, 2), experts.shape[1], row_starts=(0, 2), row_sizes=(2, 2),
        col_starts=(0, 2), col_sizes=(2, 2), out_size=(4, 4))


def _tint(expert):
    colour = np.array(EXPERT_PALETTE[expert], np.float64)
    return np.round((1 - ALPHA) * GREY + ALPHA * colour).astype(np.uint8)


def test_cells_are_scaled_to_the_picture_and_pick_the_image():
    record = _record([[0, 1], [2, 3], [4, 5], [6, 7]] * 2,
                     [[0.75, 0.25]] * 4 + [[0.5, 0.5]] * 4, batch=2)
    cells = routing_cells(record, 1, (80, 160))
    assert [c['box'] for c in cells] == [(0, 0, 80, 40), (80, 0, 160, 40),
                                         (0, 40, 80, 80), (80, 40, 160, 80)]
    assert cells[3]['experts'] == [6, 7] and cells[3]['weights'] == [.5, .5]
    # The layer's output covers twice the picture (padded input).
    padded = routing_cells(record, 0, (80, 160), extent=(160, 320))
    assert padded[3]['box'] == (160, 80, 320, 160)
    with pytest.raises(ValueError, match='outside the routed batch of 2'):
        routing_cells(record, 2, (80, 160))


def test_bands_follow_the_weights():
    cell = dict(box=(0, 0, 80, 40), experts=[3, 5], weights=[0.75, 0.25])
    assert weight_bands(cell) == [(3, 0.75, (0, 0, 60.0, 40)),
                                  (5, 0.25, (60.0, 0, 80.0, 40))]


def test_pixels_of_a_band_get_its_expert_colour_blended():
    image = np.full((80, 80, 3), GREY, np.uint8)
    record = _record([[0, 1], [2, 3], [4, 5], [6, 7]],
                     [[0.75, 0.25], [0.5, 0.5], [1.0, 0.0], [0.25, 0.75]])
    drawn = draw_routing_map(image, record, alpha=ALPHA)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    # Top-left cell (0..40 x 0..40): expert 0 on x < 30, expert 1 after;
    # points below the labels and away from the outlines.
    assert (drawn[35, 10] == _tint(0)).all()
    assert (drawn[35, 34] == _tint(1)).all()
    assert (drawn[35, 45] == _tint(2)).all()  # top right: 40..60 expert 2
    assert (drawn[35, 75] == _tint(3)).all()  # 60..80 expert 3
    assert (drawn[75, 35] == _tint(4)).all()  # weight 1: whole cell
    assert (drawn[75, 45] == _tint(6)).all()  # 40..50 expert 6
    assert (drawn[75, 70] == _tint(7)).all()  # 50..80 expert 7
    outline = 0.8 * 255 + 0.2 * _tint(0)  # white, drawn at opacity 0.8
    assert np.abs(drawn[0, 20] - outline).max() <= 2
    between = drawn[40, 20]  # the line between the two left cells
    assert (between > _tint(0)).all() and (between > _tint(4)).all()


def test_labels_name_the_experts_and_small_cells_stay_unlabelled():
    image = np.full((160, 160, 3), GREY, np.uint8)  # cells of 80x80
    record = _record([[0, 1]] * 4, [[0.5, 0.5]] * 4)
    labelled = draw_routing_map(image, record, alpha=ALPHA)
    plain = draw_routing_map(image, record, alpha=ALPHA, labels=False)
    # Two label lines at the top left of each cell, nothing elsewhere.
    for top, left in ((0, 0), (0, 80), (80, 0), (80, 80)):
        assert (labelled[top + 2:top + 14, left + 2:left + 40] !=
                plain[top + 2:top + 14, left + 2:left + 40]).any()
        assert (labelled[top + 16:top + 28, left + 2:left + 40] !=
                plain[top + 16:top + 28, left + 2:left + 40]).any()
        assert (labelled[top + 34:top + 80, left:left + 80] ==
                plain[top + 34:top + 80, left:left + 80]).all()
        assert (labelled[top:top + 80, left + 50:left + 80] ==
                plain[top:top + 80, left + 50:left + 80]).all()
    tiny = np.full((16, 16, 3), GREY, np.uint8)
    assert (draw_routing_map(tiny, record, alpha=ALPHA) == draw_routing_map(
        tiny, record, alpha=ALPHA, labels=False)).all()


def test_legend_swatches():
    legend = draw_expert_legend(4, 200, height=24)
    assert legend.shape == (24, 200, 3)
    for expert in range(4):  # swatch edges, clear of the centred names
        assert tuple(legend[4, expert * 50 + 3]) == EXPERT_PALETTE[expert]
    assert tuple(legend[0, 10]) == (255, 255, 255)
    many = draw_expert_legend(40, 200)  # too narrow to name: swatches only
    assert tuple(many[12, 5 * 18 + 2]) == EXPERT_PALETTE[18 % 16]
