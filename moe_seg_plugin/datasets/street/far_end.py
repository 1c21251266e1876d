"""Buildings and trees across the far end of the street."""
import numpy as np

from .buildings import facade_colours, sample_facade_style
from .camera import Camera
from .canvas import Canvas
from .classes import BUILDING, VEGETATION
from .colours import hsv
from .shapes import rect
from .street_layout import Street
from .vegetation import leafy, tree_line


def paint_far_end(canvas: Canvas, rng: np.random.Generator, cam: Camera,
                  street: Street) -> None:
    """Buildings and trees across the street's far end (plane Z = z_end)."""
    z = street.z_end
    reach = z * cam.width / cam.focal + 10
    x = -reach
    while x < reach:
        width = rng.uniform(8.0, 30.0)
        height = rng.uniform(6.0, 26.0)
        light = rng.uniform(0.75, 1.05)
        if rng.random() < 0.7:
            pts = cam.billboard(rect(x, 0, x + width, height), z)
            region = canvas.region(pts)
            if region is not None:
                ys, xs = region.coords()
                u, v = cam.on_plane_z(z, xs, ys)
                px = np.full_like(u, z / cam.focal)
                colours = facade_colours(canvas, region,
                                         sample_facade_style(rng),
                                         u, v, px, px, height)
                canvas.paint(region, BUILDING, colours * light)
        else:
            n = max(int(width / 3), 2) + 1
            tops = tree_line(rng, n, height * 0.6)
            pts = [[x, 0]] + [[u, t] for u, t in zip(
                np.linspace(x, x + width, n), tops)] + [[x + width, 0]]
            region = canvas.region(cam.billboard(np.array(pts), z))
            if region is not None:
                green = hsv(rng.uniform(75, 130), rng.uniform(0.4, 0.7),
                            rng.uniform(0.25, 0.45))
                canvas.paint(region, VEGETATION,
                             leafy(canvas, region, green) * light)
        x += width
