"""Where vehicles go: traffic in the lanes, parked cars, maybe a tram."""
from functools import partial
from typing import Dict, List, Tuple

import numpy as np

from .camera import Camera
from .canvas import Planned
from .classes import BUS, CAR, TRAIN, TRUCK
from .street_layout import Street
from .vehicle_body import VEHICLE_SIZES, sample_vehicle
from .vehicles import paint_vehicle


def plan_vehicles(rng: np.random.Generator, cam: Camera,
                  street: Street) -> List[Planned]:
    """Traffic in the lanes, parked cars and maybe a tram.

    Returns:
        list: (depth, painter) pairs.
    """
    z_min = cam.near_z + 1.0
    z_max = max(min(street.z_end - 15, 90.0), z_min + 20)
    taken: Dict[float, List[Tuple[float, float]]] = {
        lane: [] for lane in street.lanes}
    vehicles = []

    def place(kind: int, lane: float, z: float) -> bool:
        """Add a ``kind`` at ``z`` in ``lane``; False if the spot is taken."""
        size = VEHICLE_SIZES[kind][2][1]
        if any(z < b + 2.0 and z + size + 2.0 > a for a, b in taken[lane]):
            return False
        facing = -1 if lane < 0 and rng.random() < 0.85 else 1
        veh = sample_vehicle(rng, kind, lane + rng.uniform(-0.3, 0.3), z,
                             facing)
        taken[lane].append((z, z + veh.length))
        vehicles.append(veh)
        return True

    if street.tram_lane is not None:
        place(TRAIN, street.tram_lane,
              rng.uniform(max(z_min, 6.0) + 2, max(z_min + 8, 45.0)))
    kinds = [CAR] * int(rng.integers(2, 8))
    kinds += [TRUCK] * int(rng.random() < 0.6) + [BUS] * int(
        rng.random() < 0.6)
    for kind in kinds:
        for _ in range(8):
            lane = float(rng.choice(street.lanes))
            near = max(z_min, 7.0) if lane == 0 else z_min
            z = near + (z_max - near) * rng.random() ** 1.4
            if place(kind, lane, z):
                break
    for side in street.sides:
        if not side.parking:
            continue
        z = z_min * rng.uniform(0.8, 1.5)
        x = side.sign * (side.edge - 1.15)
        while z < min(z_max, 70.0):
            if rng.random() < 0.75:
                kind = CAR if rng.random() < 0.9 else TRUCK
                veh = sample_vehicle(rng, kind, x, z, int(rng.choice([-1, 1])))
                vehicles.append(veh)
                z += veh.length
            z += rng.uniform(0.6, 6.0)
    return [(veh.z, partial(paint_vehicle, cam=cam, veh=veh))
            for veh in vehicles]
