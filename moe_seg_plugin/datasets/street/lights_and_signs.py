"""Traffic lights and traffic signs, flat on a plane Z = const."""
import numpy as np

from .camera import Camera
from .canvas import Canvas
from .classes import TRAFFIC_LIGHT, TRAFFIC_SIGN
from .colours import jitter, pick
from .shapes import ellipse, rect


def paint_traffic_light(canvas: Canvas, rng: np.random.Generator,
                        cam: Camera, x: float, y: float, z: float) -> None:
    """A signal head whose top centre is (x, y) on the plane Z = ``z``."""
    w, h = rng.uniform(0.3, 0.42), rng.uniform(0.85, 1.1)
    housing = pick(rng, [[0.1, 0.1, 0.1], [0.2, 0.2, 0.19],
                         [0.15, 0.2, 0.15], [0.6, 0.52, 0.12]], 0.03)
    box = cam.billboard(rect(x - w / 2, y - h, x + w / 2, y), z)
    canvas.fill([box], TRAFFIC_LIGHT, housing, fine=0.05)
    if rng.random() < 0.25:  # seen from behind
        return
    lit = rng.integers(3)
    lamps = ([1.0, 0.15, 0.1], [1.0, 0.7, 0.1], [0.2, 0.95, 0.5])
    for k in range(3):
        cy = y - h * (k + 0.5) / 3
        colour = np.asarray(lamps[k], np.float32) * (1.0 if k == lit else
                                                     0.25)
        lamp = cam.billboard(ellipse(x, cy, w * 0.32, w * 0.32, 12), z)
        canvas.fill([lamp], TRAFFIC_LIGHT, colour, fine=0.03)


def paint_traffic_sign(canvas: Canvas, rng: np.random.Generator,
                       cam: Camera, x: float, y: float, z: float) -> None:
    """A sign plate centred at (x, y) on the plane Z = ``z``."""
    r = rng.uniform(0.3, 0.45)
    kind = rng.integers(5)
    red, white = jitter(rng, [0.8, 0.1, 0.1]), jitter(rng, [0.92] * 3)
    blue, yellow = jitter(rng, [0.1, 0.3, 0.75]), jitter(rng, [0.95, 0.8, 0.1])
    if kind == 0:  # prohibition: red ring, white inside
        outer, inner = ellipse(x, y, r, r), ellipse(x, y, 0.72 * r, 0.72 * r)
        colours = (red, white)
    elif kind == 1:  # mandatory: blue disc, white arrow
        outer = ellipse(x, y, r, r)
        inner = rect(x - 0.15 * r, y - 0.55 * r, x + 0.15 * r, y + 0.45 * r)
        colours = (blue, white)
    elif kind == 2:  # warning: red triangle
        t = np.array([[0, 1.1], [-0.95, -0.55], [0.95, -0.55]])
        outer, inner = t * r + (x, y), t * 0.62 * r + (x, y - 0.05 * r)
        colours = (red, white)
    elif kind == 3:  # priority road: yellow diamond, white border
        d = np.array([[0, 1.0], [1.0, 0], [0, -1.0], [-1.0, 0]])
        outer, inner = d * r + (x, y), d * 0.65 * r + (x, y)
        colours = (white, yellow)
    else:  # information: blue rectangle, white border
        outer = rect(x - r, y - 0.8 * r, x + r, y + 0.8 * r)
        inner = rect(x - 0.8 * r, y - 0.6 * r, x + 0.8 * r, y + 0.6 * r)
        colours = (white, blue)
    if rng.random() < 0.2:  # seen from behind: plain grey plate
        colours = (jitter(rng, [0.55] * 3),) * 2
    canvas.fill([cam.billboard(outer, z)], TRAFFIC_SIGN, colours[0],
                fine=0.03)
    canvas.fill([cam.billboard(inner, z)], TRAFFIC_SIGN, colours[1],
                fine=0.03)
