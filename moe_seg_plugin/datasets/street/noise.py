"""Noise for textures: smooth value noise and a hash of integer cells."""
import cv2
import numpy as np


def standardize(noise: np.ndarray) -> np.ndarray:
    """``noise`` shifted and scaled to zero mean and unit deviation."""
    noise = noise - noise.mean()
    return (noise / max(float(noise.std()), 1e-6)).astype(np.float32)


def smooth_noise(rng: np.random.Generator, height: int, width: int,
                 cell: float) -> np.ndarray:
    """Unit-deviation value noise with blobs about ``cell`` pixels wide."""
    grid = rng.standard_normal(
        (int(height / cell) + 3, int(width / cell) + 3)).astype(np.float32)
    big = cv2.resize(grid, (width + 2 * int(cell), height + 2 * int(cell)),
                     interpolation=cv2.INTER_CUBIC)
    off = int(cell) // 2
    return standardize(big[off:off + height, off:off + width])


def hash01(i: np.ndarray, j: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) per integer cell."""
    h = (i.astype(np.int64).astype(np.uint64) * np.uint64(73856093)
         ^ j.astype(np.int64).astype(np.uint64) * np.uint64(19349663)
         ^ np.uint64(salt * 83492791 + 1))
    h = (h * np.uint64(2654435761)) >> np.uint64(13)
    return ((h & np.uint64(1023)).astype(np.float32) / 1024.0)
