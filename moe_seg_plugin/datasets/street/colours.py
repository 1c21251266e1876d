"""Colour helpers: HSV to RGB and randomly varied palette colours."""
import colorsys
from typing import Sequence

import numpy as np


def hsv(h: float, s: float, v: float) -> np.ndarray:
    """RGB (3,) float32 of hue ``h`` in degrees, saturation, value."""
    return np.array(colorsys.hsv_to_rgb((h % 360) / 360.0, s, v), np.float32)


def jitter(rng: np.random.Generator, rgb: Sequence[float],
           sd: float = 0.04) -> np.ndarray:
    """``rgb`` with a small random brightness and per-channel shift."""
    rgb = np.asarray(rgb, np.float32)
    out = rgb * rng.uniform(1 - 2 * sd, 1 + 2 * sd) + rng.normal(0, sd, 3)
    return np.clip(out, 0.02, 1.0).astype(np.float32)


def pick(rng: np.random.Generator, palette: Sequence[Sequence[float]],
         sd: float = 0.04) -> np.ndarray:
    """A jittered colour chosen from ``palette``."""
    return jitter(rng, palette[int(rng.integers(len(palette)))], sd)
