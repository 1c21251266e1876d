"""Both sides of the street: plan the segments, then paint far to near."""
import numpy as np

from .barriers import paint_fence, paint_wall
from .buildings import paint_building
from .camera import Camera
from .canvas import Canvas
from .segments import plan_segments
from .street_layout import Street
from .vegetation import paint_vegetation_wall


def paint_street_sides(canvas: Canvas, rng: np.random.Generator,
                       cam: Camera, street: Street) -> None:
    """Both sides' buildings, tree rows, gaps, walls and fences."""
    plans = [(side, plan_segments(rng, street, side), rng.uniform(0.6, 1.05))
             for side in street.sides]
    for side, segments, light in plans:  # far tree lines seen through gaps
        for seg in segments:
            if seg.kind != 'open':
                continue
            far = seg.dist + rng.uniform(15.0, 40.0)
            k = far / seg.dist
            paint_vegetation_wall(
                canvas, rng, cam, side.sign * far, seg.z0 * k * 0.8,
                min(seg.z1 * k * 1.2, street.z_end), rng.uniform(6, 15),
                light)
    for side, segments, light in plans:
        for seg in sorted(segments, key=lambda s: -s.z0):
            if seg.kind == 'building':
                paint_building(canvas, rng, cam, seg, light)
            elif seg.kind == 'vegetation':
                paint_vegetation_wall(canvas, rng, cam,
                                      side.sign * seg.dist, seg.z0, seg.z1,
                                      seg.height, light)
    for side, segments, light in plans:
        for seg in segments:
            x = side.sign * (side.verge + 0.05)
            if seg.barrier == 'wall':
                paint_wall(canvas, rng, cam, x, seg.z0, seg.z1,
                           seg.barrier_h, light)
            elif seg.barrier == 'fence':
                paint_fence(canvas, rng, cam, x, seg.z0, seg.z1,
                            seg.barrier_h, light)
