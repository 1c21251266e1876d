"""Bicycles and motorcycles in side view, with or without a rider."""
from typing import Tuple

import numpy as np

from .camera import Camera
from .canvas import Canvas
from .classes import BICYCLE, MOTORCYCLE, RIDER
from .colours import hsv, jitter, pick
from .coverage import band
from .people import Outfit, person_parts, sample_outfit
from .shadows import paint_contact_shadow
from .shapes import ellipse, rect, stroke


def paint_wheel(canvas: Canvas, cam: Camera, cx: float, cy: float,
                radius: float, tyre_w: float, z: float, cls: int,
                tyre: np.ndarray, solid: bool) -> None:
    """A wheel seen from the side; see-through between spokes unless solid.

    The whole disc is labelled ``cls``; the image shows the tyre ring, a
    hub and (unless ``solid``) the darkened background inside.
    """
    region = canvas.region(cam.billboard(ellipse(cx, cy, radius, radius, 24),
                                         z))
    if region is None:
        return
    s = cam.scale(z)
    ys, xs = region.coords()
    centre = cam.billboard(np.array([[cx, cy]]), z)[0]
    dist = np.hypot(xs - centre[0], ys - centre[1]) / s
    ring = band(dist - radius + tyre_w / 2, tyre_w / 2, np.full_like(
        dist, 1 / s))
    hub = band(dist, 0.05 if not solid else radius * 0.4, np.full_like(
        dist, 1 / s))
    inside = tyre * 3.0 if solid else canvas.current(region) * 0.75
    colours = inside + (tyre[None] - inside) * ring[:, None]
    colours += (tyre * 5.0 - colours) * hub[:, None]
    canvas.paint(region, cls, colours)


def paint_bicycle(canvas: Canvas, rng: np.random.Generator, cam: Camera,
                  x: float, z: float, direction: int) -> Tuple[float, float]:
    """A bicycle in side view; returns (seat X, handlebar X)."""
    frame = hsv(rng.uniform(0, 360), rng.uniform(0.2, 0.9),
                rng.uniform(0.15, 0.85))
    tyre = jitter(rng, [0.08, 0.08, 0.08], 0.01)
    r, base = rng.uniform(0.31, 0.36), rng.uniform(0.95, 1.1)
    rear, front = x - direction * base / 2, x + direction * base / 2
    for cx in (rear, front):
        paint_wheel(canvas, cam, cx, r, r, 0.05, z, BICYCLE, tyre, False)
    crank = (x - direction * 0.05, r)
    seat = (x - direction * 0.22, r + 0.55)
    head = (front - direction * 0.12, r + 0.55)
    bar = (front - direction * 0.15, r + 0.72)
    tubes = [((rear, r), crank), ((rear, r), seat), (crank, seat),
             (crank, head), (seat, head), (head, (front, r)), (head, bar)]
    width = max(0.04, 1.0 / cam.scale(z))
    polys = [cam.billboard(stroke(a, b, width), z) for a, b in tubes]
    polys.append(cam.billboard(rect(seat[0] - 0.1, seat[1], seat[0] + 0.1,
                                    seat[1] + 0.05), z))
    canvas.fill(polys, BICYCLE, frame, fine=0.04)
    return seat[0], bar[0]


def paint_motorcycle(canvas: Canvas, rng: np.random.Generator, cam: Camera,
                     x: float, z: float, direction: int) -> Tuple[float,
                                                                  float]:
    """A motorcycle in side view; returns (seat X, handlebar X)."""
    colour = pick(rng, [[0.7, 0.1, 0.1], [0.1, 0.1, 0.1], [0.15, 0.25, 0.6],
                        [0.75, 0.75, 0.78], [0.9, 0.55, 0.1]], 0.03)
    tyre = jitter(rng, [0.07, 0.07, 0.07], 0.01)
    r, base = rng.uniform(0.29, 0.33), rng.uniform(1.3, 1.5)
    rear, front = x - direction * base / 2, x + direction * base / 2
    d = direction
    for cx in (rear, front):
        paint_wheel(canvas, cam, cx, r, r, 0.1, z, MOTORCYCLE, tyre, True)
    shell = np.array([[rear - d * 0.1, r + 0.25], [x - d * 0.45, r + 0.5],
                      [x + d * 0.05, r + 0.5], [x + d * 0.35, r + 0.62],
                      [front - d * 0.15, r + 0.62], [front - d * 0.05, r],
                      [x + d * 0.25, 0.2], [x - d * 0.3, 0.25]])
    canvas.fill([cam.billboard(shell, z)], MOTORCYCLE, colour, fine=0.04,
                medium=0.04)
    engine = rect(x - 0.25, 0.18, x + 0.25, r + 0.2)
    canvas.fill([cam.billboard(engine, z)], MOTORCYCLE,
                jitter(rng, [0.4, 0.4, 0.42]), fine=0.08)
    bar = (front - d * 0.25, r + 0.85)
    fork = stroke((front, r), bar, 0.06)
    canvas.fill([cam.billboard(fork, z)], MOTORCYCLE, tyre * 3, fine=0.04)
    return x - d * 0.25, bar[0]


def paint_rider(canvas: Canvas, rng: np.random.Generator, cam: Camera,
                x: float, z: float, motor: bool, parked: bool) -> None:
    """A bicycle or motorcycle crossing the view, with a rider unless parked.

    Args:
        canvas (Canvas): Target.
        rng (np.random.Generator): Randomness.
        cam (Camera): Camera.
        x (float): X of the vehicle's centre.
        z (float): Depth of its plane.
        motor (bool): Motorcycle instead of bicycle.
        parked (bool): No rider.
    """
    direction = int(rng.choice([-1, 1]))
    paint_contact_shadow(canvas, cam, x, z - 0.2, 0.9, 0.4, 0.4)
    if motor:
        seat, bar = paint_motorcycle(canvas, rng, cam, x, z, direction)
        hip = 0.95
    else:
        seat, bar = paint_bicycle(canvas, rng, cam, x, z, direction)
        hip = 1.0
    if parked:
        return
    outfit = sample_outfit(rng)
    if motor and rng.random() < 0.8:  # helmet
        outfit = Outfit(outfit.skin, pick(rng, [[0.1, 0.1, 0.1],
                                                [0.9, 0.9, 0.9],
                                                [0.7, 0.1, 0.1]]),
                        outfit.top, outfit.legs, outfit.shoes)
    lean = (bar - seat) * rng.uniform(0.25, 0.45)
    parts = person_parts(outfit, seat, rng.uniform(1.55, 1.9), 0.0,
                         seated=(hip, direction * 0.4), lean=lean)
    for poly, colour in parts:
        canvas.fill([cam.billboard(poly, z)], RIDER, colour, fine=0.04,
                    medium=0.04)
