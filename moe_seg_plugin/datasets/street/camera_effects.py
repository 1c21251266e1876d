"""What the camera adds: the own car's bonnet, lighting and sensor effects."""
import cv2
import numpy as np

from .canvas import Canvas
from .classes import IGNORE_INDEX
from .colours import jitter
from .shapes import ellipse


def paint_ego_hood(canvas: Canvas, rng: np.random.Generator) -> None:
    """Sometimes a thin strip of the own car's bonnet (ignore label)."""
    if rng.random() > 0.3:
        return
    h, w = canvas.height, canvas.width
    rise = h * rng.uniform(0.02, 0.06)
    pts = ellipse(w / 2 + rng.uniform(-0.05, 0.05) * w, h + h * 0.3,
                  w * rng.uniform(0.55, 0.8), h * 0.3 + rise, 48)
    canvas.fill([pts], IGNORE_INDEX, jitter(rng, [0.15, 0.16, 0.18]),
                medium=0.1, coarse=0.1)


def finish_image(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Global lighting and camera effects, then 8-bit RGB.

    Brightness, contrast, colour temperature, gamma and vignetting vary per
    image; a mild blur and sensor noise are added last.
    """
    h, w = image.shape[:2]
    mean = image.mean(axis=(0, 1), keepdims=True)
    image = (image - mean) * rng.uniform(0.8, 1.2) + mean
    image = image * rng.uniform(0.75, 1.2)
    warm = rng.uniform(-0.08, 0.08)
    image = image * np.array([1 + warm, 1.0, 1 - warm], np.float32)
    image = np.clip(image, 0, 1) ** rng.uniform(0.85, 1.15)
    across = ((np.arange(w, dtype=np.float32) - w / 2) / (w / 2)) ** 2
    down = ((np.arange(h, dtype=np.float32) - h / 2) / (h / 2)) ** 2
    vignette = 1 - rng.uniform(0.0, 0.25) * (down[:, None] + across[None]) / 2
    image = image * vignette[..., None]
    image = cv2.GaussianBlur(image.astype(np.float32), (0, 0),
                             rng.uniform(0.35, 0.9))
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    image = image + noise * rng.uniform(0.004, 0.02)
    return np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
