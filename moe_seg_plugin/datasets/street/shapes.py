"""Outlines of simple shapes (rectangles, ellipses, strokes) as point arrays.

The points are in any 2-D coordinates: metres on a plane of the world, to be
projected by :class:`~.camera.Camera`, or pixels.
"""
from typing import Sequence

import numpy as np


def rect(u0: float, v0: float, u1: float, v1: float) -> np.ndarray:
    """Corners (4, 2) of the axis-aligned rectangle [u0, u1] x [v0, v1]."""
    return np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], np.float64)


def ellipse(cu: float, cv: float, ru: float, rv: float,
            num: int = 20) -> np.ndarray:
    """Points (num, 2) on the ellipse with centre (cu, cv), radii ru, rv."""
    t = np.linspace(0.0, 2 * np.pi, num, endpoint=False)
    return np.column_stack([cu + ru * np.cos(t), cv + rv * np.sin(t)])


def stroke(p: Sequence[float], q: Sequence[float],
           width: float) -> np.ndarray:
    """Quad (4, 2) of a straight stroke of ``width`` from ``p`` to ``q``."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    d = q - p
    n = np.array([-d[1], d[0]]) / max(np.hypot(*d), 1e-9) * width / 2
    return np.stack([p + n, q + n, q - n, p - n])
