"""Barriers along a verge: free-standing walls and fences."""
import numpy as np

from .camera import Camera
from .canvas import Canvas
from .classes import FENCE, WALL
from .colours import pick
from .coverage import band, grid


def _side_plane(canvas: Canvas, cam: Camera, x: float, z0: float, z1: float,
                height: float):
    """The image region of the upright rectangle on X = ``x`` from depth
    ``z0`` to ``z1``, its plane coordinates (u along, v up) and their size
    per pixel; None when it is not in view."""
    pts = cam.project([[x, 0, z0], [x, 0, z1], [x, height, z1],
                       [x, height, z0]])
    region = canvas.region(pts)
    if region is None:
        return None
    ys, xs = region.coords()
    u, v = cam.on_plane_x(x, xs, ys)
    return region, u, v, u * u / (cam.focal * abs(x)), u / cam.focal


def paint_wall(canvas: Canvas, rng: np.random.Generator, cam: Camera,
               x: float, z0: float, z1: float, height: float,
               light: float) -> None:
    """A free-standing wall (concrete panels or bricks) on X = ``x``."""
    plane = _side_plane(canvas, cam, x, z0, z1, height)
    if plane is None:
        return
    region, u, v, px_u, px_v = plane
    if rng.random() < 0.3:
        base = pick(rng, [[0.58, 0.36, 0.28], [0.5, 0.42, 0.36]], 0.04)
        row = np.floor(v / 0.08)
        joints = np.maximum(grid(v, 0.08, 0.008, px_v),
                            grid(u + 0.12 * (row % 2), 0.24, 0.008, px_u))
        colours = canvas.texture(region, base, fine=0.05, coarse=0.06)
        colours *= (1 - 0.3 * joints)[:, None]
    else:
        base = pick(rng, [[0.62, 0.62, 0.6], [0.55, 0.57, 0.62],
                          [0.7, 0.66, 0.56], [0.45, 0.46, 0.47]], 0.05)
        panel = rng.uniform(1.5, 4.0)
        seams = grid(u, panel, 0.025, px_u)
        colours = canvas.texture(region, base, fine=0.03, grain=0.03,
                                 medium=0.06, coarse=0.1)
        colours *= (1 - 0.35 * seams)[:, None]
    coping = band(v - height + 0.08, 0.08, px_v)
    colours *= (1 + 0.2 * coping)[:, None]
    canvas.paint(region, WALL, colours * light)


def paint_fence(canvas: Canvas, rng: np.random.Generator, cam: Camera,
                x: float, z0: float, z1: float, height: float,
                light: float) -> None:
    """A fence on X = ``x``: bars, mesh or planks over what lies behind."""
    plane = _side_plane(canvas, cam, x, z0, z1, height)
    if plane is None:
        return
    region, u, v, px_u, px_v = plane
    style = rng.integers(3)
    if style == 0:  # vertical bars
        spacing = rng.uniform(0.1, 0.25)
        cover = grid(u, spacing, spacing * rng.uniform(0.12, 0.3), px_u)
    elif style == 1:  # diamond mesh
        mesh = rng.uniform(0.08, 0.16)
        cover = np.maximum(grid(u + v, mesh, 0.012, px_u + px_v),
                           grid(u - v, mesh, 0.012, px_u + px_v))
    else:  # planks with gaps
        plank = rng.uniform(0.1, 0.2)
        cover = 1 - 0.8 * grid(u, plank, plank * 0.12, px_u)
    rails = np.maximum(band(v - height + 0.05, 0.05, px_v),
                       band(v - 0.15, 0.05, px_v))
    posts = grid(u, rng.uniform(2.0, 3.0), 0.05, px_u)
    cover = np.maximum(cover, np.maximum(rails, posts))
    colour = pick(rng, [[0.2, 0.32, 0.22], [0.5, 0.5, 0.5], [0.12, 0.12, 0.13],
                        [0.82, 0.82, 0.8], [0.5, 0.36, 0.22]], 0.04)
    bars = canvas.texture(region, colour, fine=0.05, medium=0.05) * light
    behind = canvas.current(region) * 0.8
    canvas.paint(region, FENCE, behind + (bars - behind) * cover[:, None])
