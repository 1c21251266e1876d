"""Routing statistics against known cases and hand-computed values."""
import dataclasses
import math

import pytest
import torch
from torch import nn

from moe_seg_plugin.moe import MoEImportanceLoss, PatchConvMoE, top_k_route
from moe_seg_plugin.moe.statistics import (RoutingCounts, axis_cells,
                                           class_expert_counts, grid_cells)

N = 4


def _layer(num_experts=N, top_k=2, grid=(3, 3)) -> PatchConvMoE:
    return PatchConvMoE(nn.Conv2d(3, 5, 3, padding=1), num_experts=num_experts,
                        top_k=top_k, grid=grid)


def _summary(*records, num_experts=N) -> dict:
    counts = RoutingCounts(num_experts)
    for record in records:
        counts.add(record)
    return counts.summary()


@pytest.mark.parametrize('expert', [0, 3])
def test_forced_single_expert_has_all_usage_and_zero_entropy(expert):
    layer = _layer()
    layer.forced_expert = expert
    layer(torch.randn(2, 3, 12, 15))
    stats = _summary(layer.last_routing)
    assert stats['usage'][expert] == 1.0
    assert sum(stats['usage']) == 1.0
    assert stats['usage_entropy'] == pytest.approx(0.0, abs=1e-9)
    assert stats['dominant_expert'] == expert
    assert stats['dominant_share'] == 1.0
    assert stats['dead_experts'] == [i for i in range(N) if i != expert]
    assert stats['num_dead'] == N - 1
    assert stats['patches'] == 18


def test_uniform_routing_has_entropy_one():
    # Every expert first choice of two patches, all gates uniform-ish: the
    # top-2 slots then fall on each expert equally often.
    logits = torch.eye(N).repeat(2, 1) + torch.roll(torch.eye(N), 1,
                                                    1).repeat(2, 1) * 0.5
    stats = _summary(top_k_route(logits, 2))
    assert stats['usage'] == [0.25] * N
    assert stats['usage_entropy'] == pytest.approx(1.0)
    assert stats['dead_experts'] == []
    assert stats['importance_cv2'] == pytest.approx(0.0, abs=1e-9)


def test_uniform_gate_has_gate_entropy_one_and_confident_gate_zero():
    uniform = _summary(top_k_route(torch.zeros(6, N), 1))
    assert uniform['gate_entropy'] == pytest.approx(1.0)
    confident = _summary(top_k_route(60.0 * torch.eye(N), 1))
    assert confident['gate_entropy'] == pytest.approx(0.0, abs=1e-6)


def test_values_match_hand_computation_over_several_records():
    layer = _layer(top_k=2)
    records = []
    for shape in ((2, 3, 12, 15), (1, 3, 20, 9)):
        layer(torch.randn(*shape))
        records.append(layer.last_routing)
    stats = _summary(*records)
    experts = torch.cat([r.experts for r in records]).flatten()
    usage = torch.bincount(experts, minlength=N).double() / experts.numel()
    assert stats['usage'] == pytest.approx(usage.tolist())
    entropy = -sum(f * math.log(f) for f in usage.tolist() if f > 0)
    assert stats['usage_entropy'] == pytest.approx(entropy / math.log(N))
    probs = torch.cat([r.probs for r in records]).double()
    mass = probs.sum(0)
    assert stats['importance'] == pytest.approx((mass / mass.sum()).tolist())
    cv2 = (mass.var(unbiased=False) / mass.mean()**2).item()
    assert stats['importance_cv2'] == pytest.approx(cv2, rel=1e-4)
    per_patch = -(probs * probs.log()).sum(1).mean().item()
    assert stats['gate_entropy'] == pytest.approx(per_patch / math.log(N))
    assert stats['patches'] == 27


def test_importance_cv2_is_the_importance_loss_formula():
    layer = _layer()
    layer(torch.randn(3, 3, 16, 16))
    loss = MoEImportanceLoss(loss_weight=1.0)(layer.last_routing).item()
    assert _summary(layer.last_routing)['importance_cv2'] == pytest.approx(
        loss, rel=1e-5)


def test_dead_threshold_is_a_tenth_of_uniform():
    # 8 experts: threshold 1/80 = 0.0125. Expert 1 gets 1 of 100 slots.
    experts = torch.tensor([0] * 60 + [1] + [2] * 39).view(-1, 1)
    logits = torch.zeros(100, 8).scatter(1, experts, 10.0)
    stats = _summary(top_k_route(logits, 1), num_experts=8)
    assert stats['usage'][1] == pytest.approx(0.01)
    assert stats['dead_experts'] == [1, 3, 4, 5, 6, 7]


def test_single_expert_is_balanced_and_confident():
    stats = _summary(top_k_route(torch.randn(5, 1), 1), num_experts=1)
    assert stats['usage'] == [1.0]
    assert stats['usage_entropy'] == 1.0
    assert stats['gate_entropy'] == 0.0
    assert stats['dead_experts'] == []


def test_flat_sums_reload_and_reset():
    layer = _layer()
    layer(torch.randn(2, 3, 12, 12))
    counts = RoutingCounts(N, num_classes=3)
    counts.add(layer.last_routing)
    counts.add_classes(torch.tensor([4, 0, 2]),
                       torch.tensor([[4.0, 4, 0, 0], [0] * 4, [0, 0, 2, 2]]))
    before = counts.summary()
    flat = counts.flat()
    assert flat.dtype == torch.float64
    assert flat.numel() == RoutingCounts.flat_size(N, 3) == 2 * N + 3 + 3 * 5
    counts.load_flat(2 * flat)  # what a sum over two equal ranks gives
    after = counts.summary()
    assert after['patches'] == 2 * before['patches'] == 36
    assert after['usage'] == pytest.approx(before['usage'])
    assert after['class_pixels'] == [8, 0, 4]
    assert after['expert_given_class'] == [[0.5, 0.5, 0, 0], [0.0] * 4,
                                           [0, 0, 0.5, 0.5]]
    with pytest.raises(ValueError, match='expected'):
        counts.load_flat(torch.zeros(3))
    counts.reset()
    assert counts.summary()['patches'] == 0


def _record_with_cells(grid=(2, 2), size=(4, 4), batch=1):
    """A routing of a (batch, 3, *size) input through a 1x1 conv."""
    layer = PatchConvMoE(nn.Conv2d(3, 3, 1), num_experts=N, top_k=1,
                         grid=grid)
    layer(torch.randn(batch, 3, *size))
    return layer.last_routing


def test_axis_cells_scale_span_reverse_and_window():
    starts = [0, 2]  # a 4-pixel output axis cut into cells of 2
    # A label as long as the input, the output covering all of it.
    assert axis_cells(4, (0, 4), (0, 4), 4, starts).tolist() == [0, 0, 1, 1]
    # Twice as long: each cell holds 4 label pixels.
    assert axis_cells(8, (0, 4), (0, 4), 4, starts).tolist() == \
        [0] * 4 + [1] * 4
    # The label covers input pixels 0-1 only (2 padded after it).
    assert axis_cells(2, (0, 2), (0, 4), 4, starts).tolist() == [0, 0]
    # ... or 2-3 (padded before it).
    assert axis_cells(2, (2, 4), (0, 4), 4, starts).tolist() == [1, 1]
    assert axis_cells(4, (0, 4), (0, 4), 4, starts,
                      reverse=True).tolist() == [1, 1, 0, 0]
    # The layer saw input pixels 2-3, its 4 output pixels spread over them.
    assert axis_cells(4, (0, 4), (2, 4), 4, starts).tolist() == \
        [-1, -1, 0, 1]


def test_axis_cells_uneven_cells_and_device():
    cells = axis_cells(6, (0, 6), (0, 6), 3, [0, 1], device='cpu')
    assert cells.tolist() == [0, 0, 1, 1, 1, 1]
    assert cells.dtype == torch.long and cells.device.type == 'cpu'


def test_grid_cells_row_major_with_outside_marked():
    rows = torch.tensor([0, 1, -1])
    cols = torch.tensor([-1, 0, 1])
    assert grid_cells(rows, cols, 2).tolist() == [[-1, 0, 1], [-1, 2, 3],
                                                  [-1, -1, -1]]


def test_class_expert_counts_by_hand():
    record = dataclasses.replace(
        _record_with_cells(batch=2),
        experts=torch.tensor([[0], [1], [2], [3], [3], [3], [1], [1]]),
        top_k=1)
    cells = torch.tensor([[0, 0, 1, 1]] * 2 + [[2, 2, 3, 3]] * 2)
    label = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 255], [2, 2, 2, 2],
                          [2, 2, 2, 2]])
    pixels, slots = class_expert_counts(record, 1, cells, label, 3)
    # Image 1: cells 0,1 -> expert 3; cells 2,3 -> expert 1.
    assert pixels.tolist() == [4, 3, 8]
    assert slots.tolist() == [[0, 0, 0, 4], [0, 0, 0, 3], [0, 8, 0, 0]]
