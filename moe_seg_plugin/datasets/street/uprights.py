"""Vertical cylinders (poles, tree trunks) at least one pixel wide."""
import numpy as np

from .camera import Camera
from .canvas import Canvas, Region
from .shapes import rect


def cylinder_shading(region: Region, centre: float,
                     half: float) -> np.ndarray:
    """Brightness (n,) across a vertical cylinder at column ``centre``."""
    _, xs = region.coords()
    t = np.clip((xs - centre) / max(half, 0.5), -1, 1)
    return (0.65 + 0.45 * np.cos(t * np.pi / 2)).astype(np.float32)


def paint_upright(canvas: Canvas, cam: Camera, x: float, z: float,
                  y0: float, y1: float, width: float, colour: np.ndarray,
                  cls: int) -> None:
    """A vertical cylinder (pole, trunk) at least one pixel wide."""
    s = cam.scale(z)
    cx = cam.x_vp + s * x
    half = max(width * s / 2, 0.5)
    top, bottom = cam.ground_row(z) - s * y1, cam.ground_row(z) - s * y0
    region = canvas.region(rect(cx - half, top, cx + half, bottom))
    if region is None:
        return
    shade = cylinder_shading(region, cx, half)
    colours = canvas.texture(region, colour, fine=0.04, medium=0.04)
    canvas.paint(region, cls, colours * shade[:, None])
