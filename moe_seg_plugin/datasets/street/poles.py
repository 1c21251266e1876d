"""Poles along the kerbs, carrying lamps, traffic lights or signs."""
from functools import partial
from typing import List

import numpy as np

from .camera import Camera
from .canvas import Canvas, Planned
from .classes import POLE
from .colours import pick
from .lights_and_signs import paint_traffic_light, paint_traffic_sign
from .shapes import ellipse, stroke
from .street_layout import Street
from .uprights import paint_upright


def paint_pole(canvas: Canvas, rng: np.random.Generator, cam: Camera,
               street: Street, x: float, z: float, kind: str) -> None:
    """A pole of ``kind`` 'lamp', 'light', 'sign' or 'plain' and its gear.

    Args:
        canvas (Canvas): Target.
        rng (np.random.Generator): Randomness.
        cam (Camera): Camera.
        street (Street): The street (arms reach over the road).
        x (float): X of the pole's foot.
        z (float): Depth of the pole.
        kind (str): What the pole carries.
    """
    colour = pick(rng, [[0.5, 0.5, 0.5], [0.3, 0.34, 0.3], [0.15, 0.15, 0.16],
                        [0.65, 0.66, 0.68]], 0.04)
    width = rng.uniform(0.12, 0.22)
    inward = -np.sign(x)
    height = {'lamp': rng.uniform(6.5, 9.0), 'light': rng.uniform(3.0, 5.5),
              'sign': rng.uniform(2.4, 3.6), 'plain': rng.uniform(2.5, 5.0)}
    top = height[kind]
    arm_x = None
    if kind in ('lamp', 'light') and rng.random() < 0.5:
        arm_x = x + inward * rng.uniform(1.5, 0.6 * abs(x) + 1.6)
    paint_upright(canvas, cam, x, z, 0, top, width, colour, POLE)
    if arm_x is not None:
        arm = cam.billboard(stroke((x, top - 0.1), (arm_x, top - 0.1),
                                   width * 0.7), z)
        canvas.fill([arm], POLE, colour, fine=0.04)
    if kind == 'lamp':
        head_x = x if arm_x is None else arm_x
        head = cam.billboard(ellipse(head_x, top - 0.15, 0.35, 0.1), z)
        canvas.fill([head], POLE, colour * 0.8, fine=0.04)
    elif kind == 'light':
        light_x = x + inward * 0.3 if arm_x is None else arm_x
        light_y = top + (0.3 if arm_x is None else -0.15)
        paint_traffic_light(canvas, rng, cam, light_x, light_y, z)
    elif kind == 'sign':
        paint_traffic_sign(canvas, rng, cam, x, top - 0.35, z)
        if rng.random() < 0.35:
            paint_traffic_sign(canvas, rng, cam, x, top - 1.2, z)


def plan_poles(rng: np.random.Generator, cam: Camera,
               street: Street) -> List[Planned]:
    """Poles along both kerbs, at least one light and one sign most times.

    Returns:
        list: (depth, painter) pairs.
    """
    items = []
    z_max = min(street.z_end - 5, 90.0)
    for side in street.sides:
        z = cam.near_z * rng.uniform(1.0, 2.5)
        while z < z_max:
            kind = rng.choice(['lamp', 'light', 'sign', 'plain'],
                              p=[0.3, 0.25, 0.3, 0.15])
            x = side.sign * (side.edge + rng.uniform(0.3, 0.7))
            items.append([z, x, str(kind)])
            z += rng.uniform(8.0, 30.0)
    for needed in ('light', 'sign'):
        if items and all(k != needed for _, _, k in items) \
                and rng.random() < 0.9:
            items[int(rng.integers(len(items)))][2] = needed
    return [(z, partial(paint_pole, cam=cam, street=street, x=x, z=z,
                        kind=k))
            for z, x, k in items]
