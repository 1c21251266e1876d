"""Layout of the street: lanes, kerbs, sidewalks, verges and facade lines."""
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .classes import SIDEWALK, TERRAIN


@dataclass(frozen=True)
class Side:
    """One side of the street, distances |X| from the camera in metres.

    Args:
        sign (int): -1 for the left side, +1 for the right.
        edge (float): Kerb (road edge).
        walk (float): Outer edge of the sidewalk.
        verge (float): Outer edge of the terrain strip (``walk`` if none).
        setback (float): Base line of the facades.
        beyond (int): Class of the ground behind the verge.
        parking (bool): Whether a parking lane lines the kerb.
    """
    sign: int
    edge: float
    walk: float
    verge: float
    setback: float
    beyond: int
    parking: bool


@dataclass(frozen=True)
class Street:
    """Layout of the street.

    Args:
        lane_width (float): Width of a lane.
        lanes (tuple): X of the lane centres (the camera drives in X = 0).
        left (Side): Left side.
        right (Side): Right side.
        z_end (float): Depth of the facades closing the street's far end.
        tram_lane (float | None): X of a lane with tram rails.
        crosswalk (float | None): Depth of a zebra crossing's near edge.
    """
    lane_width: float
    lanes: Tuple[float, ...]
    left: Side
    right: Side
    z_end: float
    tram_lane: Optional[float]
    crosswalk: Optional[float]

    @property
    def sides(self) -> Tuple[Side, Side]:
        """The left and the right side."""
        return self.left, self.right


def sample_street(rng: np.random.Generator) -> Street:
    """Lanes, sidewalks, verges and facade lines of a random street."""
    lane_width = rng.uniform(2.8, 3.6)
    n_left, n_right = (int(n) for n in rng.integers(0, 3, size=2))
    if n_left + n_right == 0:
        n_left = 1
    lanes = tuple(lane_width * k for k in range(-n_left, n_right + 1))

    def side(sign: int, lanes_out: int) -> Side:
        """The side ``sign``, ``lanes_out`` lanes beyond the camera's lane."""
        parking = rng.random() < 0.45
        edge = lane_width * (lanes_out + 0.5) + (
            rng.uniform(2.0, 2.5) if parking else rng.uniform(0.1, 0.6))
        walk = edge + rng.uniform(1.6, 4.5)
        verge = walk + (rng.uniform(1.2, 5.0) if rng.random() < 0.7 else 0)
        return Side(sign=sign, edge=edge, walk=walk, verge=verge,
                    setback=verge + rng.uniform(0.3, 2.0),
                    beyond=SIDEWALK if rng.random() < 0.5 else TERRAIN,
                    parking=parking)

    left, right = side(-1, n_left), side(1, n_right)
    tram_lane = None
    if rng.random() < 0.45:
        tram_lane = float(rng.choice(lanes))
    crosswalk = rng.uniform(9.0, 30.0) if rng.random() < 0.35 else None
    return Street(lane_width=lane_width, lanes=lanes, left=left, right=right,
                  z_end=rng.uniform(70.0, 200.0), tram_lane=tram_lane,
                  crosswalk=crosswalk)
