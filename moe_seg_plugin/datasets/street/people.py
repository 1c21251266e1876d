"""People: outfits, body parts and standing or walking pedestrians."""
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from .camera import Camera
from .canvas import Canvas
from .classes import PERSON
from .colours import hsv, jitter, pick
from .shadows import paint_contact_shadow
from .shapes import ellipse, rect, stroke


@dataclass(frozen=True)
class Outfit:
    """Colours of a person.

    Args:
        skin (np.ndarray): Face colour.
        hair (np.ndarray): Hair (or helmet) colour.
        top (np.ndarray): Torso and arms.
        legs (np.ndarray): Legs.
        shoes (np.ndarray): Shoes.
    """
    skin: np.ndarray
    hair: np.ndarray
    top: np.ndarray
    legs: np.ndarray
    shoes: np.ndarray


def sample_outfit(rng: np.random.Generator) -> Outfit:
    """Random clothes, skin and hair colours."""
    def cloth() -> np.ndarray:
        """A grey or a coloured fabric."""
        if rng.random() < 0.5:
            return jitter(rng, [rng.uniform(0.08, 0.5)] * 3, 0.03)
        return hsv(rng.uniform(0, 360), rng.uniform(0.3, 0.8),
                   rng.uniform(0.25, 0.8))
    return Outfit(
        skin=pick(rng, [[0.85, 0.68, 0.55], [0.65, 0.45, 0.33],
                        [0.4, 0.27, 0.2]], 0.03),
        hair=pick(rng, [[0.1, 0.08, 0.06], [0.35, 0.25, 0.15],
                        [0.7, 0.6, 0.4], [0.5, 0.5, 0.5]], 0.03),
        top=cloth(), legs=(jitter(rng, [0.15, 0.2, 0.35]) if rng.random()
                           < 0.4 else cloth()),
        shoes=jitter(rng, [0.1, 0.1, 0.1], 0.03))


def person_parts(outfit: Outfit, x: float, height: float, stride: float,
                 seated: Optional[Tuple[float, float]] = None,
                 lean: float = 0.0) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Polygons (X, Y) and colours of a person facing the camera or side.

    Args:
        outfit (Outfit): Colours.
        x (float): X of the body's centre line.
        height (float): Standing height (m).
        stride (float): Horizontal spread of the feet (walking pose).
        seated (tuple | None): (hip height, knee forward offset) for a
            rider; None for standing.
        lean (float): Forward shift of the shoulders (m) for a rider.

    Returns:
        list: (polygon, colour) pairs in drawing order.
    """
    k = height / 1.75
    hip_y = 0.86 * k if seated is None else seated[0]
    shoulder = (x + lean, hip_y + 0.58 * k)
    parts = []
    if seated is None:
        for sign in (-1, 1):
            foot = (x + sign * (0.1 * k + stride / 2), 0.06)
            parts.append((stroke((x + sign * 0.08 * k, hip_y), foot,
                                 0.14 * k), outfit.legs))
            parts.append((rect(foot[0] - 0.07 * k, 0, foot[0] + 0.07 * k,
                               0.08), outfit.shoes))
    else:
        knee = (x + seated[1], hip_y + 0.05)
        foot = (x + seated[1] * 0.6, max(hip_y - 0.75 * k, 0.15))
        parts.append((stroke((x, hip_y), knee, 0.15 * k), outfit.legs))
        parts.append((stroke(knee, foot, 0.13 * k), outfit.legs))
    torso = np.array([[x - 0.17 * k, hip_y - 0.05], [x + 0.17 * k,
                                                     hip_y - 0.05],
                      [shoulder[0] + 0.2 * k, shoulder[1]],
                      [shoulder[0] - 0.2 * k, shoulder[1]]])
    parts.append((torso, outfit.top))
    head_y = shoulder[1] + 0.14 * k
    parts.append((ellipse(shoulder[0], head_y, 0.09 * k, 0.115 * k, 16),
                  outfit.skin))
    parts.append((ellipse(shoulder[0], head_y + 0.05 * k, 0.095 * k,
                          0.07 * k, 12), outfit.hair))
    for sign in (-1, 1):
        hand = (shoulder[0] + sign * 0.24 * k + (lean * 0.8 if seated else 0),
                shoulder[1] - 0.5 * k + (0.25 * k if seated else 0))
        parts.append((stroke((shoulder[0] + sign * 0.19 * k,
                              shoulder[1] - 0.05), hand, 0.09 * k),
                      outfit.top * 0.9))
    return parts


def paint_person(canvas: Canvas, rng: np.random.Generator, cam: Camera,
                 x: float, z: float) -> None:
    """A standing or walking pedestrian on the plane Z = ``z``."""
    paint_contact_shadow(canvas, cam, x, z - 0.25, 0.35, 0.5, 0.4)
    height = rng.uniform(1.5, 1.95)
    stride = rng.uniform(0.0, 0.45)
    for poly, colour in person_parts(sample_outfit(rng), x, height, stride):
        canvas.fill([cam.billboard(poly, z)], PERSON, colour, fine=0.04,
                    medium=0.04)
