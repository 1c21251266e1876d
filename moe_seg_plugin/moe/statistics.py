"""Routing health measured on a routing record (no gradients)."""
import math

import torch
from torch import Tensor

from .routing import RoutingRecord


@torch.no_grad()
def expert_usage(record: RoutingRecord) -> Tensor:
    """Share f_i of the top-k slots each expert got (sums to 1).

    Returns:
        Tensor: Shape (N,).
    """
    counts = torch.bincount(record.experts.flatten(),
                            minlength=record.num_experts)
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
        dict[str, Tensor]: ``usage_entropy`` (normalised) and
        ``dominant_share`` (the busiest expert's share of slots).
    """
    usage = expert_usage(record)
    return dict(usage_entropy=normalised_entropy(usage),
                dominant_share=usage.max())
