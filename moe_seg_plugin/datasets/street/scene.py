"""Compose one street scene: plan it, paint it far to near, finish it."""
from typing import Tuple

import numpy as np

from .camera import sample_camera
from .camera_effects import finish_image, paint_ego_hood
from .canvas import Canvas
from .far_end import paint_far_end
from .ground import paint_ground
from .people_plan import plan_people
from .poles import plan_poles
from .sky import paint_sky
from .street_layout import sample_street
from .street_sides import paint_street_sides
from .vegetation import plan_trees
from .vehicle_plan import plan_vehicles


def generate_scene(rng: np.random.Generator, height: int = 256,
                   width: int = 512) -> Tuple[np.ndarray, np.ndarray]:
    """One street scene and its label.

    Args:
        rng (np.random.Generator): All randomness comes from here, so the
            same generator state gives identical arrays.
        height (int): Image rows. Default: 256.
        width (int): Image columns. Default: 512.

    Returns:
        tuple: image (height, width, 3) uint8 RGB and label (height, width)
        uint8 of Cityscapes train ids (0..18; 255 for the own car's bonnet).
    """
    if height < 8 or width < 8:
        raise ValueError(f'image size {height}x{width} is too small')
    cam = sample_camera(rng, height, width)
    street = sample_street(rng)
    canvas = Canvas(rng, height, width)
    paint_sky(canvas, rng, cam)
    paint_ground(canvas, rng, cam, street)
    paint_far_end(canvas, rng, cam, street)
    paint_street_sides(canvas, rng, cam, street)
    objects = (plan_poles(rng, cam, street) + plan_trees(rng, cam, street)
               + plan_vehicles(rng, cam, street)
               + plan_people(rng, cam, street))
    for _, painter in sorted(objects, key=lambda item: -item[0]):
        painter(canvas=canvas, rng=rng)
    paint_ego_hood(canvas, rng)
    return finish_image(canvas.image, rng), canvas.label
