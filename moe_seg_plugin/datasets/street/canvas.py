"""The canvas being painted: image, label, noise fields and shape regions."""
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import cv2
import numpy as np

from .camera import Polygon
from .classes import SKY
from .noise import smooth_noise, standardize

SUBPIXEL_BITS = 4  # fixed-point bits of polygon vertices given to cv2

# An object to paint: its depth and a painter called with canvas= and rng=.
Planned = Tuple[float, Callable[..., None]]


@dataclass
class Region:
    """Pixels of a shape: a boolean ``mask`` in its bounding box.

    Args:
        y0 (int): Top row of the bounding box.
        x0 (int): Left column of the bounding box.
        mask (np.ndarray): Bool (h, w); True on the shape's pixels.
    """
    y0: int
    x0: int
    mask: np.ndarray

    @property
    def window(self) -> Tuple[slice, slice]:
        """Slices of the bounding box in the image."""
        h, w = self.mask.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)

    def coords(self) -> Tuple[np.ndarray, np.ndarray]:
        """Rows and columns (float32) of the shape's pixels."""
        rows, cols = np.nonzero(self.mask)
        return ((rows + self.y0).astype(np.float32),
                (cols + self.x0).astype(np.float32))


class Canvas:
    """The image (float RGB in [0, 1]) and label being painted.

    Also holds the image's noise fields, all of unit deviation: ``fine``
    (per pixel), ``grain`` (about 2 px), ``medium`` (about 6 px) and
    ``coarse`` (about 1/10 of the image height).

    Args:
        rng (np.random.Generator): Source of the noise fields.
        height (int): Image rows.
        width (int): Image columns.
    """

    def __init__(self, rng: np.random.Generator, height: int,
                 width: int) -> None:
        self.height, self.width = height, width
        self.image = np.zeros((height, width, 3), np.float32)
        self.label = np.full((height, width), SKY, np.uint8)
        white = rng.standard_normal((height, width)).astype(np.float32)
        self.fields = {
            'fine': standardize(white),
            'grain': standardize(cv2.GaussianBlur(white, (0, 0), 1.0)),
            'medium': smooth_noise(rng, height, width, 6.0),
            'coarse': smooth_noise(rng, height, width,
                                   max(height / 10.0, 4.0)),
        }

    def region(self, *polygons: Polygon) -> Optional[Region]:
        """Pixels covered by the union of ``polygons``; None if none."""
        pts = np.concatenate(polygons)
        x0 = max(int(np.floor(pts[:, 0].min())), 0)
        y0 = max(int(np.floor(pts[:, 1].min())), 0)
        x1 = min(int(np.ceil(pts[:, 0].max())) + 1, self.width)
        y1 = min(int(np.ceil(pts[:, 1].max())) + 1, self.height)
        if x1 <= x0 or y1 <= y0:
            return None
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        one = 1 << SUBPIXEL_BITS
        for poly in polygons:
            fixed = np.round((poly - (x0, y0)) * one).astype(np.int32)
            cv2.fillPoly(mask, [fixed], 1, cv2.LINE_8, SUBPIXEL_BITS)
        if not mask.any():
            return None
        return Region(y0, x0, mask.astype(bool))

    def field(self, name: str, region: Region) -> np.ndarray:
        """Values (n,) of the noise field ``name`` on the region's pixels."""
        return self.fields[name][region.window][region.mask]

    def texture(self, region: Region, base: np.ndarray,
                **amounts: float) -> np.ndarray:
        """``base`` colour modulated by noise fields: (n, 3).

        Args:
            region (Region): Pixels to colour.
            base (np.ndarray): RGB colour (3,) or per pixel (n, 3).
            **amounts: Relative amplitude per field name, e.g. fine=0.05.
        """
        factor = np.ones(int(region.mask.sum()), np.float32)
        for name, amount in amounts.items():
            if amount:
                factor += amount * self.field(name, region)
        return np.asarray(base, np.float32) * factor[:, None]

    def current(self, region: Region) -> np.ndarray:
        """Colours (n, 3) already painted on the region's pixels."""
        return self.image[region.window][region.mask]

    def paint(self, region: Optional[Region], cls: Optional[int],
              colours: np.ndarray) -> None:
        """Write colours, and the class unless ``cls`` is None."""
        if region is None:
            return
        self.image[region.window][region.mask] = colours
        if cls is not None:
            self.label[region.window][region.mask] = cls

    def fill(self, polygons: Sequence[Polygon], cls: Optional[int],
             base: np.ndarray, **amounts: float) -> Optional[Region]:
        """Paint the union of ``polygons`` in a textured ``base`` colour.

        Returns:
            Region | None: The painted pixels.
        """
        region = self.region(*polygons)
        if region is not None:
            self.paint(region, cls, self.texture(region, base, **amounts))
        return region

    def darken(self, region: Optional[Region], factor: np.ndarray) -> None:
        """Multiply the image (not the label) by ``factor`` (n,) there."""
        if region is not None:
            self.image[region.window][region.mask] *= factor[:, None]
