"""Soft contact shadows on the ground under vehicles and people."""
import numpy as np

from .camera import Camera
from .canvas import Canvas


def paint_contact_shadow(canvas: Canvas, cam: Camera, x: float, z: float,
                         half_w: float, length: float,
                         strength: float = 0.55) -> None:
    """Darken the ground under an object (image only, soft edges)."""
    pts = cam.project([[x - half_w, 0, z], [x + half_w, 0, z],
                       [x + half_w, 0, z + length],
                       [x - half_w, 0, z + length]])
    region = canvas.region(pts)
    if region is None:
        return
    ys, xs = region.coords()
    gx, gz = cam.on_ground(xs, ys)
    q = ((gx - x) / half_w) ** 2 + ((gz - z - length / 2) / (length / 2)) ** 2
    canvas.darken(region, (1 - strength * np.clip(1.2 - q, 0, 1)
                           ).astype(np.float32))
