"""Routing statistics (no gradients, except :func:`cv_squared`).

Per record: :func:`expert_usage`, :func:`routing_health`. Over many
forward passes: :class:`RoutingCounts` sums what the statistics need and
gives them with :meth:`RoutingCounts.summary`; its sums travel as one flat
tensor (:meth:`RoutingCounts.flat`), so a distributed run can add them up
over ranks. P(expert | class) needs the ground truth: :func:`axis_cells`
and :func:`grid_cells` give the grid cell of every label pixel from plain
sizes and offsets, and :func:`class_expert_counts` counts the pixels of
each class in each expert's patches. Reading those sizes and offsets from
a framework's data samples is the caller's job.
"""
import math
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from .routing import RoutingRecord, count_values


def cv_squared(x: Tensor, eps: float = 1e-10) -> Tensor:
    """Squared coefficient of variation var(x) / mean(x)^2 (population).

    The importance CV^2 of a gate mass (MoEImportanceLoss and the routing
    statistics both use it).
    """
    x = x.float()
    return x.var(unbiased=False) / (x.mean()**2 + eps)


@torch.no_grad()
def expert_usage(record: RoutingRecord) -> Tensor:
    """Share f_i of the top-k slots each expert got (sums to 1).

    Returns:
        Tensor: Shape (N,).
    """
    counts = count_values(record.experts, record.num_experts)
    return counts.float() / counts.sum().clamp_min(1)


@torch.no_grad()
def normalised_entropy(usage: Tensor) -> Tensor:
    """H(f) / log N: 1 for uniform usage, 0 when one expert takes all.

    With a single expert, usage is trivially balanced and this is 1.
    """
    if usage.numel() == 1:
        return usage.new_ones(())
    terms = usage * usage.clamp_min(1e-12).log()
    return -terms.sum() / math.log(usage.numel())


@torch.no_grad()
def routing_health(record: RoutingRecord) -> dict:
    """The metrics logged in training.

    Returns:
        dict[str, Tensor]: ``usage_entropy`` (normalised),
        ``dominant_share`` (the busiest expert's share of slots) and, in
        capacity mode, ``dropped_share`` (the share of slots dropped).
    """
    usage = expert_usage(record)
    health = dict(usage_entropy=normalised_entropy(usage),
                  dominant_share=usage.max())
    if record.kept is not None:
        health['dropped_share'] = 1 - record.kept.float().mean()
    return health


@torch.no_grad()
def patch_gate_entropy(probs: Tensor) -> Tensor:
    """Entropy H(P_t) of each patch's gate distribution, in nats.

    Args:
        probs (Tensor): Gate probabilities (T, N).

    Returns:
        Tensor: Shape (T,).
    """
    probs = probs.detach().double()
    return -(probs * probs.clamp_min(1e-300).log()).sum(dim=1)


def dead_threshold(num_experts: int) -> float:
    """Usage below which an expert counts as dead: 1 / (10 N)."""
    return 1.0 / (10 * num_experts)


class RoutingCounts:
    """Sums over forward passes of one layer, from which the routing
    statistics follow.

    Holds (float64, on the device of the first record): slot counts per
    expert (each patch fills k slots), gate probability mass per expert
    (importance), the sum of the per-patch gate entropies, the patch count,
    the slots capacity mode dropped and, when ``num_classes`` > 0, the
    label pixels per class and the pixel-slots per class and expert (a
    pixel in a patch routed to k
    experts adds 1 to each of them).

    Args:
        num_experts (int): N.
        num_classes (int): Classes for P(expert | class); 0 for none.
        device (torch.device, optional): Where the sums live.
    """

    def __init__(self, num_experts: int, num_classes: int = 0,
                 device: Optional[torch.device] = None) -> None:
        if num_experts < 1 or num_classes < 0:
            raise ValueError(f'RoutingCounts needs num_experts >= 1 and '
                             f'num_classes >= 0, got {num_experts}, '
                             f'{num_classes}')
        self.num_experts = num_experts
        self.num_classes = num_classes
        self._flat = torch.zeros(self.flat_size(num_experts, num_classes),
                                 dtype=torch.float64, device=device)

    @staticmethod
    def flat_size(num_experts: int, num_classes: int) -> int:
        """Length of :meth:`flat` for these sizes."""
        return 2 * num_experts + 3 + num_classes * (1 + num_experts)

    def _part(self, start: int, length: int) -> Tensor:
        return self._flat[start:start + length]

    @property
    def slots(self) -> Tensor:
        """Top-k slots per expert (N,)."""
        return self._part(0, self.num_experts)

    @property
    def gate_mass(self) -> Tensor:
        """Summed gate probabilities per expert (N,): the importance."""
        return self._part(self.num_experts, self.num_experts)

    @property
    def entropy_sum(self) -> Tensor:
        """Sum over patches of the gate entropy in nats (1,)."""
        return self._part(2 * self.num_experts, 1)

    @property
    def patches(self) -> Tensor:
        """Patches counted (1,)."""
        return self._part(2 * self.num_experts + 1, 1)

    @property
    def dropped(self) -> Tensor:
        """Slots over an expert's capacity (1,)."""
        return self._part(2 * self.num_experts + 2, 1)

    @property
    def class_pixels(self) -> Tensor:
        """Label pixels per class (C,)."""
        return self._part(2 * self.num_experts + 3, self.num_classes)

    @property
    def class_slots(self) -> Tensor:
        """Pixel-slots per class and expert (C, N)."""
        start = 2 * self.num_experts + 3 + self.num_classes
        return self._part(start, self.num_classes * self.num_experts).view(
            self.num_classes, self.num_experts)

    def flat(self) -> Tensor:
        """All sums as one float64 tensor (a view: changing it changes the
        counts, so an in-place all-reduce sums them over ranks)."""
        return self._flat

    def load_flat(self, flat: Tensor) -> None:
        """Replace the sums by ``flat`` (e.g. reduced over ranks)."""
        if flat.shape != self._flat.shape:
            raise ValueError(f'RoutingCounts.load_flat: expected '
                             f'{tuple(self._flat.shape)}, got '
                             f'{tuple(flat.shape)}')
        self._flat = flat.to(self._flat)

    def reset(self) -> None:
        """Set every sum to zero."""
        self._flat.zero_()

    @torch.no_grad()
    def add(self, record: RoutingRecord,
            image_index: Optional[int] = None) -> None:
        """Add one forward pass's routing (no host sync).

        Args:
            record (RoutingRecord): The routing.
            image_index (int, optional): Add only this image of the batch.
        """
        if record.num_experts != self.num_experts:
            raise ValueError(f'RoutingCounts for {self.num_experts} experts '
                             f'got a record with {record.num_experts}')
        if self._flat.device != record.probs.device:
            self._flat = self._flat.to(record.probs.device)
        experts, probs = record.experts, record.probs.detach()
        kept = record.kept
        if image_index is not None:
            per_image = record.grid[1] * record.grid[2]
            part = slice(image_index * per_image,
                         (image_index + 1) * per_image)
            experts, probs = experts[part], probs[part]
            kept = None if kept is None else kept[part]
        if kept is not None:
            self.dropped.add_((~kept).sum())
        experts = experts.flatten()
        self.slots.index_add_(
            0, experts, torch.ones_like(experts, dtype=torch.float64))
        self.gate_mass.add_(probs.double().sum(dim=0))
        self.entropy_sum.add_(patch_gate_entropy(probs).sum())
        self.patches.add_(probs.shape[0])

    @torch.no_grad()
    def add_classes(self, pixels: Tensor, slots: Tensor) -> None:
        """Add class counts from :func:`class_expert_counts`.

        Args:
            pixels (Tensor): Label pixels per class (C,).
            slots (Tensor): Pixel-slots per class and expert (C, N).
        """
        if slots.shape != (self.num_classes, self.num_experts):
            raise ValueError(
                f'RoutingCounts.add_classes: expected slots of shape '
                f'({self.num_classes}, {self.num_experts}), got '
                f'{tuple(slots.shape)}')
        self.class_pixels.add_(pixels.to(self._flat))
        self.class_slots.add_(slots.to(self._flat))

    @torch.no_grad()
    def summary(self) -> dict:
        """The routing statistics of everything added.

        Returns:
            dict: Plain Python numbers and lists:

            - ``patches``: patches counted.
            - ``usage``: share f_i of the top-k slots per expert.
            - ``usage_entropy``: H(f) / log N (1 balanced, 0 collapsed; 1
              for a single expert).
            - ``dominant_expert``, ``dominant_share``: argmax and max of f.
            - ``dead_experts``: experts with f_i < 1 / (10 N);
              ``num_dead``: how many.
            - ``importance``: share of the gate probability mass per
              expert; ``importance_cv2``: CV^2 of that mass (the
              MoEImportanceLoss formula, over all patches added).
            - ``gate_entropy``: mean per-patch gate entropy H(P_t)
              normalised by log N (0 confident, 1 uniform; 0 for N = 1).
            - ``dropped_share``: share of the top-k slots dropped over an
              expert's capacity (capacity mode; 0 otherwise).
            - ``class_pixels`` and ``expert_given_class`` (C x N rows
              summing to 1, zeros for a class without pixels): only when
              class counts were added.
        """
        n = self.num_experts
        slots = self.slots.cpu()
        patches = float(self.patches.item())
        usage = slots / slots.sum().clamp_min(1)
        mass = self.gate_mass.cpu()
        mean_entropy = float(self.entropy_sum.item()) / max(patches, 1.0)
        out = dict(
            num_experts=n,
            patches=int(round(patches)),
            usage=usage.tolist(),
            usage_entropy=float(normalised_entropy(usage)),
            dominant_expert=int(usage.argmax()),
            dominant_share=float(usage.max()),
            dead_experts=[
                i for i, share in enumerate(usage.tolist())
                if share < dead_threshold(n)
            ],
            importance=(mass / mass.sum().clamp_min(1e-300)).tolist(),
            importance_cv2=float(cv_squared(mass)),
            gate_entropy=(mean_entropy / math.log(n) if n > 1 else 0.0),
            dropped_share=float(self.dropped.item()) /
            max(float(slots.sum()), 1.0))
        out['num_dead'] = len(out['dead_experts'])
        if self.num_classes:
            pixels = self.class_pixels.cpu()
            class_slots = self.class_slots.cpu()
            given = class_slots / class_slots.sum(
                dim=1, keepdim=True).clamp_min(1)
            out['class_pixels'] = [int(round(p)) for p in pixels.tolist()]
            out['expert_given_class'] = given.tolist()
        return out


def _output_pixels(position: Tensor, window: Tuple[float, float],
                   out_len: int) -> Tensor:
    """Output pixel under each input position, for a layer whose output
    of ``out_len`` pixels covers ``window`` of its input axis.

    Args:
        position (Tensor): Input positions (L,), float64.
        window (tuple): (first, stop) of the input the layer saw.
        out_len (int): Output pixels along the axis.

    Returns:
        Tensor: (L,) long, clamped to [0, out_len).
    """
    first, stop = window
    out = ((position - first) * out_len / (stop - first)).floor().long()
    return out.clamp(0, out_len - 1)


def axis_cells(label_len: int, span: Tuple[float, float],
               window: Tuple[float, float], out_len: int,
               starts: Sequence[int], reverse: bool = False,
               device: Optional[torch.device] = None) -> Tensor:
    """The grid row (or column) each label pixel falls in, along one axis.

    The label's pixels evenly cover ``span`` of the layer's input axis
    (the last label pixel first if ``reverse``); the layer's output covers
    ``window`` of that axis and is cut into cells that begin at the
    output pixels ``starts``. A label pixel counts where its centre is.

    Args:
        label_len (int): Label pixels along the axis.
        span (tuple): (first, stop) of the input the label covers.
        window (tuple): (first, stop) of the input the layer saw.
        out_len (int): Output pixels of the layer along the axis.
        starts (sequence[int]): First output pixel of each cell, rising.
        reverse (bool): The label runs against the input (a mirrored
            input). Default: False.
        device (torch.device, optional): Device of the result.

    Returns:
        Tensor: (label_len,) long, the cell of each label pixel; -1 where
        the pixel lies outside ``window``.
    """
    centres = (torch.arange(label_len, device=device, dtype=torch.float64) +
               0.5) / label_len
    if reverse:
        centres = 1.0 - centres
    first, stop = span
    position = first + centres * (stop - first)
    inside = (position >= window[0]) & (position < window[1])
    out = _output_pixels(position, window, out_len)
    boundaries = torch.tensor(starts, device=device, dtype=torch.long)
    cells = torch.bucketize(out, boundaries, right=True) - 1
    return torch.where(inside, cells, torch.full_like(cells, -1))


def grid_cells(rows: Tensor, cols: Tensor, num_cols: int) -> Tensor:
    """Row-major cell index of every (row, column) pair of a grid.

    Args:
        rows (Tensor): Grid row per pixel row (H,), -1 for none (as
            :func:`axis_cells` gives).
        cols (Tensor): Grid column per pixel column (W,), -1 for none.
        num_cols (int): Cells per grid row.

    Returns:
        Tensor: (H, W) long, the cell index; -1 where the row or the
        column is -1.
    """
    cells = rows[:, None] * num_cols + cols[None, :]
    outside = (rows[:, None] < 0) | (cols[None, :] < 0)
    return cells.masked_fill(outside, -1)


@torch.no_grad()
def class_expert_counts(record: RoutingRecord, image_index: int,
                        cells: Tensor, label: Tensor,
                        num_classes: int) -> Tuple[Tensor, Tensor]:
    """Pixels of each class, and pixel-slots of each class per expert, for
    one image of a record.

    Args:
        record (RoutingRecord): The routing of the batch holding the image.
        image_index (int): The image's index in the batch.
        cells (Tensor): Cell per label pixel (H, W), from
            :func:`grid_cells`; -1 is left out.
        label (Tensor): Class per pixel (H, W); values outside
            [0, num_classes) (ignore index) are left out.
        num_classes (int): C.

    Returns:
        tuple[Tensor, Tensor]: Pixels per class (C,) and pixel-slots per
        class and expert (C, N), float64.
    """
    _, rows, cols = record.grid
    per_image = rows * cols
    label = label.to(cells.device).long()
    valid = (cells >= 0) & (label >= 0) & (label < num_classes)
    pairs = label[valid] * per_image + cells[valid]
    class_cell = count_values(pairs, num_classes * per_image).double(
    ).view(num_classes, per_image)
    first = image_index * per_image
    experts = record.experts[first:first + per_image].to(cells.device)
    slots = class_cell.new_zeros(num_classes, record.num_experts)
    for slot in range(experts.shape[1]):
        slots.index_add_(1, experts[:, slot], class_cell)
    return class_cell.sum(dim=1), slots
