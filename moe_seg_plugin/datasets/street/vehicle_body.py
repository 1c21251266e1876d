"""Vehicles: sizes, paint colours and drawing on a vehicle's faces."""
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .camera import Camera
from .canvas import Canvas
from .classes import BUS, CAR, TRAIN, TRUCK
from .colours import pick
from .shapes import ellipse


@dataclass(frozen=True)
class Vehicle:
    """A box-shaped vehicle on the road.

    Args:
        kind (int): CAR, TRUCK, BUS or TRAIN.
        x (float): X of its centre line.
        z (float): Depth of its face nearest to the camera.
        width (float): Width (m).
        height (float): Height (m).
        length (float): Length (m).
        facing (int): +1 shows its rear to the camera, -1 its front.
    """
    kind: int
    x: float
    z: float
    width: float
    height: float
    length: float
    facing: int


VEHICLE_SIZES = {  # (width, height, length) ranges
    CAR: ((1.65, 1.95), (1.35, 1.7), (3.8, 4.9)),
    TRUCK: ((2.3, 2.55), (3.0, 3.9), (6.5, 10.0)),
    BUS: ((2.45, 2.55), (2.9, 3.4), (10.5, 13.0)),
    TRAIN: ((2.3, 2.65), (3.2, 3.6), (20.0, 32.0)),
}


def sample_vehicle(rng: np.random.Generator, kind: int, x: float, z: float,
                   facing: int) -> Vehicle:
    """A vehicle of ``kind`` with random size."""
    (w0, w1), (h0, h1), (l0, l1) = VEHICLE_SIZES[kind]
    return Vehicle(kind=kind, x=x, z=z, width=rng.uniform(w0, w1),
                   height=rng.uniform(h0, h1), length=rng.uniform(l0, l1),
                   facing=facing)


class Body:
    """Draws polygons given on one face of a vehicle in local metres.

    The near face uses (u, v) = (X - centre, Y); the side face
    (t, v) = (Z - near depth, Y).
    """

    def __init__(self, canvas: Canvas, cam: Camera, veh: Vehicle) -> None:
        self.canvas, self.cam, self.veh = canvas, cam, veh
        self.side_x = None
        if veh.x - veh.width / 2 > 0.2:
            self.side_x = veh.x - veh.width / 2
        elif veh.x + veh.width / 2 < -0.2:
            self.side_x = veh.x + veh.width / 2

    def near(self, poly: np.ndarray, colour: np.ndarray,
             cls: Optional[int] = None, **amounts: float) -> None:
        """Fill ``poly`` (u, v) on the near face."""
        pts = np.column_stack([poly[:, 0] + self.veh.x, poly[:, 1]])
        self.canvas.fill([self.cam.billboard(pts, self.veh.z)],
                         self.veh.kind if cls is None else cls, colour,
                         **amounts)

    def side(self, poly: np.ndarray, colour: np.ndarray,
             **amounts: float) -> None:
        """Fill ``poly`` (t, v) on the visible side face, if any."""
        if self.side_x is None:
            return
        pts = np.column_stack([np.full(len(poly), self.side_x), poly[:, 1],
                               poly[:, 0] + self.veh.z])
        self.canvas.fill([self.cam.project(pts)], self.veh.kind, colour,
                         **amounts)

    def wheels(self, positions: Sequence[float], radius: float,
               tyre: np.ndarray) -> None:
        """Wheels on the side face at lengths ``positions``."""
        for t in positions:
            self.side(ellipse(t, radius, radius, radius, 16), tyre,
                      fine=0.05)
            self.side(ellipse(t, radius, radius * 0.5, radius * 0.5, 12),
                      tyre * 4.0, fine=0.05)


def vehicle_colour(rng: np.random.Generator, kind: int) -> np.ndarray:
    """Paint colour typical of the vehicle kind."""
    if kind == CAR:
        return pick(rng, [[0.9, 0.9, 0.9], [0.7, 0.72, 0.75], [0.1, 0.1, 0.11],
                          [0.35, 0.36, 0.38], [0.6, 0.08, 0.08],
                          [0.12, 0.2, 0.45], [0.2, 0.3, 0.22],
                          [0.45, 0.35, 0.25], [0.2, 0.4, 0.65]], 0.03)
    if kind == TRUCK:
        return pick(rng, [[0.9, 0.9, 0.88], [0.75, 0.75, 0.75],
                          [0.8, 0.3, 0.1], [0.2, 0.3, 0.55],
                          [0.85, 0.75, 0.2]], 0.03)
    if kind == BUS:
        return pick(rng, [[0.92, 0.8, 0.15], [0.85, 0.12, 0.1],
                          [0.9, 0.9, 0.88], [0.15, 0.35, 0.7],
                          [0.2, 0.55, 0.3]], 0.03)
    return pick(rng, [[0.95, 0.95, 0.93], [0.85, 0.15, 0.12],
                      [0.95, 0.82, 0.2], [0.3, 0.5, 0.85]], 0.03)
