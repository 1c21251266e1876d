"""Where people go: pedestrians, riders on the road, parked two-wheelers."""
from functools import partial
from typing import List

import numpy as np

from .camera import Camera
from .canvas import Planned
from .people import paint_person
from .street_layout import Street
from .two_wheelers import paint_rider


def plan_people(rng: np.random.Generator, cam: Camera,
                street: Street) -> List[Planned]:
    """Pedestrians, riders on the road and parked two-wheelers.

    Returns:
        list: (depth, painter) pairs.
    """
    items = []
    z_min = cam.near_z * 1.15
    z_max = max(min(street.z_end - 10, 60.0), z_min + 10)

    def depth() -> float:
        """A random depth, nearer ones more likely."""
        return z_min + (z_max - z_min) * rng.random() ** 1.5

    for _ in range(int(rng.integers(1, 9)) if rng.random() < 0.93 else 0):
        side = street.sides[int(rng.integers(2))]
        x = side.sign * rng.uniform(side.edge + 0.5, side.walk - 0.3)
        z = depth()
        items.append((z, partial(paint_person, cam=cam, x=x, z=z)))
    if street.crosswalk is not None and rng.random() < 0.7:
        for _ in range(int(rng.integers(1, 4))):
            x = rng.uniform(-street.left.edge, street.right.edge)
            z = street.crosswalk + rng.uniform(0.5, 3.5)
            items.append((z, partial(paint_person, cam=cam, x=x, z=z)))
    for motor, chance in ((False, 0.6), (True, 0.55)):
        for _ in range(int(rng.random() < chance) + int(rng.random() < 0.2)):
            side = street.sides[int(rng.integers(2))]
            x = side.sign * (side.edge - rng.uniform(0.8, 2.5))
            z = depth()
            items.append((z, partial(paint_rider, cam=cam, x=x, z=z,
                                     motor=motor, parked=False)))
    for motor, chance in ((False, 0.5), (True, 0.25)):
        if rng.random() > chance:
            continue
        side = street.sides[int(rng.integers(2))]
        z = depth()
        for k in range(int(rng.integers(1, 4))):
            x = side.sign * (side.walk - 1.0)
            items.append((z + 0.7 * k, partial(
                paint_rider, cam=cam, x=x, z=z + 0.7 * k, motor=motor,
                parked=True)))
    return items
