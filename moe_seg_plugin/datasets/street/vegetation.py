"""Vegetation: foliage texture, rows of trees and single street trees."""
from functools import partial
from typing import List

import numpy as np

from .camera import Camera
from .canvas import Canvas, Planned, Region
from .classes import VEGETATION
from .colours import hsv, jitter
from .shapes import ellipse
from .street_layout import Street
from .uprights import paint_upright


def leafy(canvas: Canvas, region: Region, base: np.ndarray) -> np.ndarray:
    """Foliage: clumps of lit leaves with dark gaps, colour drifting."""
    grain = canvas.field('grain', region)
    medium = canvas.field('medium', region)
    fine = canvas.field('fine', region)
    lit = 1.0 / (1.0 + np.exp(-2.5 * (grain + 0.6 * medium)))
    shade = 0.42 + 0.75 * lit + 0.06 * fine
    tint = np.array([0.08, 0.03, -0.04], np.float32)
    colour = base[None] + tint[None] * canvas.field('coarse', region)[:, None]
    return colour * shade[:, None]


def tree_line(rng: np.random.Generator, points: int,
              height: float) -> np.ndarray:
    """Bumpy crown heights (points,) of a row of trees about ``height``."""
    bumps = rng.uniform(0.7, 1.0, points) * height
    return bumps * (1 + 0.15 * np.sin(np.arange(points) * 2.1))


def paint_vegetation_wall(canvas: Canvas, rng: np.random.Generator,
                          cam: Camera, x: float, z0: float, z1: float,
                          height: float, light: float) -> None:
    """A row of trees or a hedge along the plane X = ``x``."""
    n = max(int((z1 - z0) / 2.5), 2) + 1
    zs = np.linspace(z0, z1, n)
    tops = tree_line(rng, n, height)
    pts = [[x, 0, z0]] + [[x, t, z] for z, t in zip(zs, tops)] + [[x, 0, z1]]
    region = canvas.region(cam.project(pts))
    if region is None:
        return
    green = hsv(rng.uniform(75, 130), rng.uniform(0.4, 0.75),
                rng.uniform(0.25, 0.45))
    canvas.paint(region, VEGETATION, leafy(canvas, region, green) * light)


def paint_tree(canvas: Canvas, rng: np.random.Generator, cam: Camera,
               x: float, z: float) -> None:
    """A tree: trunk and a crown of overlapping leafy blobs."""
    trunk_h = rng.uniform(1.8, 3.5)
    paint_upright(canvas, cam, x, z, 0, trunk_h + 0.5,
                  rng.uniform(0.18, 0.4),
                  jitter(rng, [0.32, 0.26, 0.2], 0.04), VEGETATION)
    r = rng.uniform(1.2, 2.6)
    blobs = [ellipse(x, trunk_h + r * 0.9, r, r * 0.9, 24)]
    for _ in range(int(rng.integers(2, 6))):
        cx = x + rng.uniform(-0.8, 0.8) * r
        cy = trunk_h + r * rng.uniform(0.6, 1.4)
        rr = r * rng.uniform(0.45, 0.75)
        blobs.append(ellipse(cx, cy, rr, rr * rng.uniform(0.8, 1.1), 16))
    region = canvas.region(*[cam.billboard(b, z) for b in blobs])
    if region is None:
        return
    green = hsv(rng.uniform(60, 130) if rng.random() < 0.9 else
                rng.uniform(30, 50), rng.uniform(0.4, 0.75),
                rng.uniform(0.28, 0.5))
    canvas.paint(region, VEGETATION, leafy(canvas, region, green))


def plan_trees(rng: np.random.Generator, cam: Camera,
               street: Street) -> List[Planned]:
    """Rows of trees on sidewalks or terrain strips."""
    items = []
    for side in street.sides:
        if rng.random() > 0.55:
            continue
        if side.verge > side.walk:
            dist = (side.walk + side.verge) / 2
        else:
            dist = side.walk - 0.7
        z = cam.near_z * rng.uniform(1.2, 3.0)
        while z < min(street.z_end - 5, 80.0):
            x = side.sign * (dist + rng.uniform(-0.3, 0.3))
            items.append((z, partial(paint_tree, x=x, z=z, cam=cam)))
            z += rng.uniform(7.0, 16.0)
    return items
