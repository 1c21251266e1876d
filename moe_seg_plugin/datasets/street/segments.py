"""Segments of a street side: buildings, tree rows or gaps, with barriers."""
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from .street_layout import Side, Street


@dataclass(frozen=True)
class Segment:
    """A stretch of one side of the street between depths ``z0``, ``z1``.

    Args:
        side (Side): The side.
        z0 (float): Near end.
        z1 (float): Far end.
        kind (str): 'building', 'vegetation' or 'open' (a gap).
        dist (float): |X| of its facade.
        height (float): Height of the building or trees.
        barrier (str | None): 'wall' or 'fence' along the verge.
        barrier_h (float): Height of the barrier.
    """
    side: Side
    z0: float
    z1: float
    kind: str
    dist: float
    height: float
    barrier: Optional[str]
    barrier_h: float


def plan_segments(rng: np.random.Generator, street: Street,
                  side: Side) -> List[Segment]:
    """Consecutive segments of one side from near the camera to z_end."""
    segments = []
    z = 1.0
    while z < street.z_end:
        length = rng.uniform(8.0, 35.0)
        kind = rng.choice(['building', 'vegetation', 'open'],
                          p=[0.62, 0.26, 0.12])
        barrier = rng.choice(['none', 'wall', 'fence'], p=[0.5, 0.25, 0.25])
        height = (rng.uniform(7.0, 24.0) if kind == 'building' else
                  rng.uniform(3.0, 12.0))
        segments.append(Segment(
            side=side, z0=z, z1=min(z + length, street.z_end), kind=kind,
            dist=side.setback + rng.uniform(0.0, 2.5 if kind == 'building'
                                            else 0.8),
            height=height, barrier=None if barrier == 'none' else barrier,
            barrier_h=rng.uniform(0.9, 2.6)))
        z += length
    return segments
