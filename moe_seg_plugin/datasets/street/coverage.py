"""Anti-aliased coverage of bands and periodic stripes on a surface.

Used for road markings, grout, mortar, window grids and fence bars: each
pixel gets the share of its footprint that the pattern covers.
"""
import numpy as np


def band(dist: np.ndarray, half: float, px: np.ndarray) -> np.ndarray:
    """Share of a pixel ``px`` wide covered by a band |d| <= ``half``.

    Args:
        dist (np.ndarray): Signed distance of the pixel centre to the band's
            centre line, in the band's units.
        half (float): Half width of the band.
        px (np.ndarray): Pixel footprint in the same units.
    """
    lo = np.maximum(dist - px / 2, -half)
    hi = np.minimum(dist + px / 2, half)
    return np.clip(hi - lo, 0.0, None) / px


def grid(coord: np.ndarray, period: float, half: float,
         px: np.ndarray) -> np.ndarray:
    """Coverage of periodic bands (centred on multiples of ``period``).

    Fades to the mean coverage where pixels grow beyond half a period, so
    far-away patterns turn into their average instead of aliasing.
    """
    dist = coord - period * np.round(coord / period)
    fade = np.clip(px * 2.0 / period - 1.0, 0.0, 1.0)
    return band(dist, half, px) * (1 - fade) + (2 * half / period) * fade
