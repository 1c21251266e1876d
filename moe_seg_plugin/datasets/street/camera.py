"""Pinhole camera of the scene: world-to-pixel projection and back.

World axes: X to the right, Y up (the ground is Y = 0), Z forward; metres.
"""
from dataclasses import dataclass
from typing import Tuple

import numpy as np

MIN_DEPTH = 0.5  # metres; no vertex is placed nearer
COORD_LIMIT = 1e5  # pixel coordinates are clipped to +-this for cv2

Polygon = np.ndarray  # (N, 2) pixel coordinates (x, y)


@dataclass(frozen=True)
class Camera:
    """Pinhole camera looking along +Z from ``cam_h`` metres above ground.

    Args:
        height (int): Image rows.
        width (int): Image columns.
        focal (float): Focal length in pixels.
        cam_h (float): Height of the camera above the ground in metres.
        x_vp (float): Column of the vanishing point.
        y_hor (float): Row of the horizon.
    """
    height: int
    width: int
    focal: float
    cam_h: float
    x_vp: float
    y_hor: float

    @property
    def near_z(self) -> float:
        """Depth of the ground seen at the bottom image row."""
        return self.focal * self.cam_h / (self.height - self.y_hor)

    def scale(self, z: float) -> float:
        """Pixels per metre on the plane at depth ``z``."""
        return self.focal / z

    def project(self, points: np.ndarray) -> Polygon:
        """World points (N, 3) to pixel coordinates (N, 2)."""
        pts = np.asarray(points, np.float64).reshape(-1, 3)
        z = np.maximum(pts[:, 2], MIN_DEPTH)
        x = self.x_vp + self.focal * pts[:, 0] / z
        y = self.y_hor + self.focal * (self.cam_h - pts[:, 1]) / z
        return np.clip(np.stack([x, y], axis=1), -COORD_LIMIT, COORD_LIMIT)

    def billboard(self, points: np.ndarray, z: float) -> Polygon:
        """Points (N, 2) = (X, Y) of the plane Z = ``z`` to pixels."""
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        return self.project(np.column_stack([pts, np.full(len(pts), z)]))

    def ground_row(self, z: float) -> float:
        """Image row of the ground at depth ``z``."""
        return self.y_hor + self.focal * self.cam_h / z

    def on_ground(self, xs: np.ndarray,
                  ys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """World (X, Z) of pixels (``xs``, ``ys``) showing the ground."""
        z = self.focal * self.cam_h / np.maximum(ys - self.y_hor, 1e-2)
        return (xs - self.x_vp) * z / self.focal, z

    def on_plane_x(self, x_plane: float, xs: np.ndarray,
                   ys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """World (Z, Y) of pixels showing the plane X = ``x_plane``."""
        dx = (xs - self.x_vp) * np.sign(x_plane)
        z = self.focal * abs(x_plane) / np.maximum(dx, 1e-2)
        z = np.clip(z, MIN_DEPTH, 1e4)
        return z, self.cam_h - (ys - self.y_hor) * z / self.focal

    def on_plane_z(self, z_plane: float, xs: np.ndarray,
                   ys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """World (X, Y) of pixels showing the plane Z = ``z_plane``."""
        k = z_plane / self.focal
        return (xs - self.x_vp) * k, self.cam_h - (ys - self.y_hor) * k


def sample_camera(rng: np.random.Generator, height: int,
                  width: int) -> Camera:
    """A camera with random focal length, height, horizon and heading."""
    return Camera(
        height=height, width=width,
        focal=width * rng.uniform(0.75, 1.05),
        cam_h=rng.uniform(1.25, 1.65),
        x_vp=width * (0.5 + rng.uniform(-0.07, 0.07)),
        y_hor=height * rng.uniform(0.37, 0.48))
