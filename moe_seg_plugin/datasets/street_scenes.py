"""Synthetic street scenes labelled with the 19 Cityscapes train ids.

A scene is a straight street seen from a car: a pinhole camera at height
``cam_h`` looks along the street towards a vanishing point on the horizon.
Every surface is a plane of the world (the ground, facades along the street,
faces across it) or a flat shape on such a plane (persons, signs, bicycles),
projected exactly and painted far to near, so nearer things occlude farther
ones and sizes follow the perspective. Textures are computed from each
pixel's coordinates on its plane (tiles, window grids and lattices keep their
perspective, and fade to their mean colour when finer than a pixel) and from
noise fields shared by the image. Colours, sizes, counts and lighting vary
per image and per object.

World axes: X to the right, Y up (the ground is Y = 0), Z forward; metres.
The entry point is :func:`generate_scene`; the rest are its parts.
"""
import colorsys
from dataclasses import dataclass
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

CLASSES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole',
           'traffic light', 'traffic sign', 'vegetation', 'terrain', 'sky',
           'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
           'bicycle')
(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN,
 VEGETATION, TERRAIN, SKY, PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE,
 BICYCLE) = range(len(CLASSES))
IGNORE_INDEX = 255

MIN_DEPTH = 0.5  # metres; no vertex is placed nearer
COORD_LIMIT = 1e5  # pixel coordinates are clipped to +-this for cv2
SUBPIXEL_BITS = 4  # fixed-point bits of polygon vertices given to cv2

Polygon = np.ndarray  # (N, 2) pixel coordinates (x, y)
# An object to paint: its depth and a painter called with canvas= and rng=.
Planned = Tuple[float, Callable[..., None]]


# --------------------------------------------------------------- geometry


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


def rect(u0: float, v0: float, u1: float, v1: float) -> np.ndarray:
    """Corners (4, 2) of the axis-aligned rectangle [u0, u1] x [v0, v1]."""
    return np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], np.float64)


def ellipse(cu: float, cv: float, ru: float, rv: float,
            num: int = 20) -> np.ndarray:
    """Points (num, 2) on the ellipse with centre (cu, cv), radii ru, rv."""
    t = np.linspace(0.0, 2 * np.pi, num, endpoint=False)
    return np.column_stack([cu + ru * np.cos(t), cv + rv * np.sin(t)])


def stroke(p: Sequence[float], q: Sequence[float],
           width: float) -> np.ndarray:
    """Quad (4, 2) of a straight stroke of ``width`` from ``p`` to ``q``."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    d = q - p
    n = np.array([-d[1], d[0]]) / max(np.hypot(*d), 1e-9) * width / 2
    return np.stack([p + n, q + n, q - n, p - n])


# ---------------------------------------------------- canvas and textures


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


def _unit(noise: np.ndarray) -> np.ndarray:
    """``noise`` shifted and scaled to zero mean and unit deviation."""
    noise = noise - noise.mean()
    return (noise / max(float(noise.std()), 1e-6)).astype(np.float32)


def smooth_noise(rng: np.random.Generator, height: int, width: int,
                 cell: float) -> np.ndarray:
    """Unit-deviation value noise with blobs about ``cell`` pixels wide."""
    grid = rng.standard_normal(
        (int(height / cell) + 3, int(width / cell) + 3)).astype(np.float32)
    big = cv2.resize(grid, (width + 2 * int(cell), height + 2 * int(cell)),
                     interpolation=cv2.INTER_CUBIC)
    off = int(cell) // 2
    return _unit(big[off:off + height, off:off + width])


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
            'fine': _unit(white),
            'grain': _unit(cv2.GaussianBlur(white, (0, 0), 1.0)),
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


def band(dist: np.ndarray, half: float, px: np.ndarray) -> np.ndarray:
    """Share of a pixel ``px`` wide covered by a band |d| <= ``half``.

    Args:
        dist (np.ndarray): Signed distance of the pixel centre to the band's
            centre line, in the band's units.
        half (float): Half width of the band.
        px (np.ndarray): Pixel footprint in the same units.
    """
    lo = np.maximum(dist - px / 2, -half)
    hi = np.minimum(dist + px / 2, half)
    return np.clip(hi - lo, 0.0, None) / px


def grid(coord: np.ndarray, period: float, half: float,
         px: np.ndarray) -> np.ndarray:
    """Coverage of periodic bands (centred on multiples of ``period``).

    Fades to the mean coverage where pixels grow beyond half a period, so
    far-away patterns turn into their average instead of aliasing.
    """
    dist = coord - period * np.round(coord / period)
    fade = np.clip(px * 2.0 / period - 1.0, 0.0, 1.0)
    return band(dist, half, px) * (1 - fade) + (2 * half / period) * fade


def hash01(i: np.ndarray, j: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) per integer cell."""
    h = (i.astype(np.int64).astype(np.uint64) * np.uint64(73856093)
         ^ j.astype(np.int64).astype(np.uint64) * np.uint64(19349663)
         ^ np.uint64(salt * 83492791 + 1))
    h = (h * np.uint64(2654435761)) >> np.uint64(13)
    return ((h & np.uint64(1023)).astype(np.float32) / 1024.0)


def hsv(h: float, s: float, v: float) -> np.ndarray:
    """RGB (3,) float32 of hue ``h`` in degrees, saturation, value."""
    return np.array(colorsys.hsv_to_rgb((h % 360) / 360.0, s, v), np.float32)


def jitter(rng: np.random.Generator, rgb: Sequence[float],
           sd: float = 0.04) -> np.ndarray:
    """``rgb`` with a small random brightness and per-channel shift."""
    rgb = np.asarray(rgb, np.float32)
    out = rgb * rng.uniform(1 - 2 * sd, 1 + 2 * sd) + rng.normal(0, sd, 3)
    return np.clip(out, 0.02, 1.0).astype(np.float32)


def pick(rng: np.random.Generator, palette: Sequence[Sequence[float]],
         sd: float = 0.04) -> np.ndarray:
    """A jittered colour chosen from ``palette``."""
    return jitter(rng, palette[int(rng.integers(len(palette)))], sd)


def leafy(canvas: Canvas, region: Region, base: np.ndarray) -> np.ndarray:
    """Foliage: clumps of lit leaves with dark gaps, colour drifting."""
    grain = canvas.field('grain', region)
    medium = canvas.field('medium', region)
    fine = canvas.field('fine', region)
    lit = 1.0 / (1.0 + np.exp(-2.5 * (grain + 0.6 * medium)))
    shade = 0.42 + 0.75 * lit + 0.06 * fine
    tint = np.array([0.08, 0.03, -0.04], np.float32)
    colour = base[None] + tint[None] * canvas.field('coarse', region)[:, None]
    return colour * shade[:, None]


# ------------------------------------------------------------ scene plan


@dataclass(frozen=True)
class Side:
    """One side of the street, distances |X| from the camera in metres.

    Args:
        sign (int): -1 for the left side, +1 for the right.
        edge (float): Kerb (road edge).
        walk (float): Outer edge of the sidewalk.
        verge (float): Outer edge of the terrain strip (``walk`` if none).
        setback (float): Base line of the facades.
        beyond (int): Class of the ground behind the verge.
        parking (bool): Whether a parking lane lines the kerb.
    """
    sign: int
    edge: float
    walk: float
    verge: float
    setback: float
    beyond: int
    parking: bool


@dataclass(frozen=True)
class Street:
    """Layout of the street.

    Args:
        lane_width (float): Width of a lane.
        lanes (tuple): X of the lane centres (the camera drives in X = 0).
        left (Side): Left side.
        right (Side): Right side.
        z_end (float): Depth of the facades closing the street's far end.
        tram_lane (float | None): X of a lane with tram rails.
        crosswalk (float | None): Depth of a zebra crossing's near edge.
    """
    lane_width: float
    lanes: Tuple[float, ...]
    left: Side
    right: Side
    z_end: float
    tram_lane: Optional[float]
    crosswalk: Optional[float]

    @property
    def sides(self) -> Tuple[Side, Side]:
        return self.left, self.right


def sample_camera(rng: np.random.Generator, height: int,
                  width: int) -> Camera:
    """A camera with random focal length, height, horizon and heading."""
    return Camera(
        height=height, width=width,
        focal=width * rng.uniform(0.75, 1.05),
        cam_h=rng.uniform(1.25, 1.65),
        x_vp=width * (0.5 + rng.uniform(-0.07, 0.07)),
        y_hor=height * rng.uniform(0.37, 0.48))


def sample_street(rng: np.random.Generator) -> Street:
    """Lanes, sidewalks, verges and facade lines of a random street."""
    lane_width = rng.uniform(2.8, 3.6)
    n_left, n_right = (int(n) for n in rng.integers(0, 3, size=2))
    if n_left + n_right == 0:
        n_left = 1
    lanes = tuple(lane_width * k for k in range(-n_left, n_right + 1))

    def side(sign: int, lanes_out: int) -> Side:
        parking = rng.random() < 0.45
        edge = lane_width * (lanes_out + 0.5) + (
            rng.uniform(2.0, 2.5) if parking else rng.uniform(0.1, 0.6))
        walk = edge + rng.uniform(1.6, 4.5)
        verge = walk + (rng.uniform(1.2, 5.0) if rng.random() < 0.7 else 0)
        return Side(sign=sign, edge=edge, walk=walk, verge=verge,
                    setback=verge + rng.uniform(0.3, 2.0),
                    beyond=SIDEWALK if rng.random() < 0.5 else TERRAIN,
                    parking=parking)

    left, right = side(-1, n_left), side(1, n_right)
    tram_lane = None
    if rng.random() < 0.45:
        tram_lane = float(rng.choice(lanes))
    crosswalk = rng.uniform(9.0, 30.0) if rng.random() < 0.35 else None
    return Street(lane_width=lane_width, lanes=lanes, left=left, right=right,
                  z_end=rng.uniform(70.0, 200.0), tram_lane=tram_lane,
                  crosswalk=crosswalk)


# -------------------------------------------------------- sky and ground


def paint_sky(canvas: Canvas, rng: np.random.Generator, cam: Camera) -> None:
    """Whole image: a vertical gradient, bluish or overcast, with clouds."""
    if rng.random() < 0.3:  # overcast
        zenith = jitter(rng, [0.62, 0.65, 0.7], 0.05)
        horizon = np.clip(zenith + rng.uniform(0.05, 0.15), 0, 1)
    else:
        zenith = np.array([rng.uniform(0.2, 0.45), rng.uniform(0.42, 0.62),
                           rng.uniform(0.75, 0.95)], np.float32)
        horizon = jitter(rng, [0.78, 0.84, 0.9], 0.03)
    rows = np.arange(canvas.height, dtype=np.float32)
    t = np.clip((cam.y_hor - rows) / max(cam.y_hor, 1.0), 0, 1) ** 0.7
    sky = horizon[None] + (zenith - horizon)[None] * t[:, None]
    image = np.broadcast_to(sky[:, None], canvas.image.shape).copy()
    clouds = smooth_noise(rng, canvas.height, canvas.width,
                          canvas.width / rng.uniform(4.0, 9.0))
    clouds += 0.35 * canvas.fields['medium']
    amount = np.clip((clouds - rng.uniform(0.0, 1.2)) * 0.8, 0, 1)
    cloud = jitter(rng, [0.92, 0.92, 0.93], 0.03)
    image += (cloud[None, None] - image) * amount[..., None]
    canvas.image[:] = image * (1 + 0.01 * canvas.fields['fine'][..., None])
    canvas.label[:] = SKY


def road_markings(rng: np.random.Generator, street: Street, x: np.ndarray,
                  z: np.ndarray, px_x: np.ndarray,
                  px_z: np.ndarray) -> np.ndarray:
    """Coverage in [0, 1] of lane lines, edge lines and a zebra crossing.

    Args:
        rng (np.random.Generator): Randomness.
        street (Street): Lanes and kerbs.
        x (np.ndarray): Ground X of each pixel.
        z (np.ndarray): Ground Z of each pixel.
        px_x (np.ndarray): Pixel footprint along X.
        px_z (np.ndarray): Pixel footprint along Z.

    Returns:
        np.ndarray: Paint coverage per pixel.
    """
    left, right = -street.left.edge, street.right.edge
    lw = street.lane_width
    marks = np.zeros_like(x)
    period, duty = rng.uniform(6.0, 12.0), rng.uniform(0.3, 0.5)
    dashes = grid(z - period * duty / 2, period, period * duty / 2, px_z)
    solid_centre = rng.random() < 0.4  # between the two directions
    for lane in street.lanes[:-1]:
        boundary = lane + lw / 2
        line = band(x - boundary, 0.06, px_x)
        solid = solid_centre and abs(boundary + lw / 2) < 1e-6
        marks = np.maximum(marks, line if solid else line * dashes)
    for edge, inward in ((left, 1), (right, -1)):
        if rng.random() < 0.7:
            marks = np.maximum(marks, band(x - edge - inward * 0.3, 0.06,
                                           px_x))
    if street.crosswalk is not None:
        zc = street.crosswalk
        stripes = grid(x, 1.0, 0.25, px_x) * band(z - zc - 2.0, 2.0, px_z)
        marks = np.maximum(marks, stripes * ((x > left) & (x < right)))
    return marks


def paint_ground(canvas: Canvas, rng: np.random.Generator, cam: Camera,
                 street: Street) -> None:
    """Road, sidewalks with kerbs, terrain strips and a soft shadow."""
    top = int(np.floor(cam.y_hor)) + 1
    if top >= canvas.height:
        return
    mask = np.zeros((canvas.height, canvas.width), bool)
    mask[top:] = True
    region = Region(0, 0, mask)
    ys, xs = region.coords()
    x, z = cam.on_ground(xs, ys)
    px_x = z / cam.focal
    px_z = z * z / (cam.focal * cam.cam_h)

    label = np.full(x.shape, TERRAIN, np.uint8)
    for side in street.sides:
        d = x * side.sign
        label[d > side.verge] = side.beyond
        label[(d > 0) & (d <= side.walk)] = SIDEWALK
    label[(x > -street.left.edge) & (x < street.right.edge)] = ROAD

    # road: asphalt grain, blotches, markings
    asphalt = jitter(rng, [rng.uniform(0.27, 0.45)] * 3, 0.02)
    road = canvas.texture(region, asphalt, fine=0.07, grain=0.05,
                          medium=0.03, coarse=0.035)
    marks = road_markings(rng, street, x, z, px_x, px_z)
    paint = pick(rng, [[0.9, 0.9, 0.88], [0.85, 0.75, 0.3]], 0.03)
    road += (paint[None] - road) * marks[:, None]
    if street.tram_lane is not None:
        rails = np.maximum(band(x - street.tram_lane + 0.72, 0.04, px_x),
                           band(x - street.tram_lane - 0.72, 0.04, px_x))
        steel = jitter(rng, [0.62, 0.62, 0.64], 0.03)
        road += (steel[None] - road) * rails[:, None]

    # sidewalk: tiles with grout and kerb stones along the road
    tile = rng.uniform(0.25, 0.6)
    stone = pick(rng, [[0.6, 0.6, 0.6], [0.64, 0.59, 0.5],
                       [0.6, 0.47, 0.44], [0.5, 0.52, 0.55]], 0.05)
    tone = hash01(np.floor(x / tile), np.floor(z / tile), 1) - 0.5
    grout = np.maximum(grid(x, tile, 0.012, px_x), grid(z, tile, 0.012, px_z))
    walk = canvas.texture(region, stone, fine=0.05, medium=0.04, coarse=0.05)
    walk *= ((1 + 0.12 * tone) * (1 - 0.3 * grout))[:, None]
    for side in street.sides:
        kerb = band(x * side.sign - side.edge - 0.12, 0.12, px_x)
        walk *= (1 + 0.25 * kerb)[:, None]

    # terrain: grass with dirt patches
    grass = hsv(rng.uniform(55, 95), rng.uniform(0.35, 0.6),
                rng.uniform(0.42, 0.62))
    dirt = jitter(rng, [0.5, 0.42, 0.3], 0.04)
    soil = np.clip(canvas.field('coarse', region) * 0.7
                   - rng.uniform(0.2, 1.2), 0, 1)
    terrain = grass[None] + (dirt - grass)[None] * soil[:, None]
    terrain = canvas.texture(region, terrain, fine=0.1, grain=0.1,
                             medium=0.06)

    colours = np.where((label == ROAD)[:, None], road,
                       np.where((label == SIDEWALK)[:, None], walk, terrain))
    if rng.random() < 0.6:  # shadow of the buildings of one side
        sign = rng.choice([-1, 1])
        edge = street.right.edge if sign > 0 else street.left.edge
        line = edge - rng.uniform(-1.0, 5.0)
        wave = 1.5 * np.sin(z / rng.uniform(5, 15) + rng.uniform(0, 6.3))
        inside = 1.0 / (1.0 + np.exp(np.clip(
            (line - wave - x * sign) / 0.3, -30, 30)))
        colours *= (1 - rng.uniform(0.2, 0.45) * inside)[:, None]
    canvas.paint(region, None, colours)
    canvas.label[mask] = label


# ---------------------------------------------------- buildings and walls


@dataclass(frozen=True)
class FacadeStyle:
    """Appearance of one building.

    Args:
        wall (np.ndarray): Plaster or brick colour.
        glass (np.ndarray): Window colour.
        bay (float): Window spacing along the facade (m).
        window_w (float): Window width as a share of ``bay``.
        floor_h (float): Storey height (m).
        window_h (float): Window height as a share of ``floor_h``.
        shop (bool): Whether the ground floor has shop windows.
        bricks (bool): Whether the wall shows bricks.
    """
    wall: np.ndarray
    glass: np.ndarray
    bay: float
    window_w: float
    floor_h: float
    window_h: float
    shop: bool
    bricks: bool


def sample_facade_style(rng: np.random.Generator) -> FacadeStyle:
    """A random building look."""
    bricks = rng.random() < 0.2
    if bricks:
        wall = pick(rng, [[0.55, 0.3, 0.24], [0.62, 0.42, 0.3],
                          [0.45, 0.28, 0.22]], 0.04)
    else:
        wall = pick(rng, [[0.8, 0.76, 0.66], [0.7, 0.7, 0.68],
                          [0.45, 0.45, 0.46], [0.76, 0.62, 0.45],
                          [0.6, 0.66, 0.7], [0.86, 0.84, 0.8],
                          [0.66, 0.58, 0.55], [0.55, 0.6, 0.52]], 0.05)
    return FacadeStyle(
        wall=wall, glass=jitter(rng, [0.2, 0.25, 0.3], 0.05),
        bay=rng.uniform(2.2, 4.0), window_w=rng.uniform(0.35, 0.65),
        floor_h=rng.uniform(2.8, 3.8), window_h=rng.uniform(0.4, 0.62),
        shop=rng.random() < 0.5, bricks=bricks)


def facade_colours(canvas: Canvas, region: Region, style: FacadeStyle,
                   u: np.ndarray, v: np.ndarray, px_u: np.ndarray,
                   px_v: np.ndarray, top: float) -> np.ndarray:
    """Colours of a facade from its surface coordinates.

    Args:
        canvas (Canvas): Source of the noise fields.
        region (Region): The facade's pixels.
        style (FacadeStyle): Look of the building.
        u (np.ndarray): Horizontal position on the facade (m), per pixel.
        v (np.ndarray): Height above ground (m), per pixel.
        px_u (np.ndarray): Pixel footprint along ``u``.
        px_v (np.ndarray): Pixel footprint along ``v``.
        top (float): Height of the roof line (m).

    Returns:
        np.ndarray: Colours (n, 3).
    """
    base = canvas.texture(region, style.wall, fine=0.04, medium=0.05,
                          coarse=0.06)
    if style.bricks:
        row = np.floor(v / 0.08)
        shift = 0.125 * (row % 2)
        mortar = np.maximum(grid(v, 0.08, 0.007, px_v),
                            grid(u + shift, 0.25, 0.007, px_u))
        tone = hash01(np.floor((u + shift) / 0.25), row, 5) - 0.5
        base *= ((1 + 0.15 * tone) * (1 - 0.35 * mortar) + 0.2 * mortar
                 )[:, None]
    ledge = grid(v, style.floor_h, 0.07, px_v) * (v > 0.5)
    cornice = band(v - top + 0.35, 0.2, px_v)
    base *= (1 - 0.18 * ledge + 0.18 * cornice)[:, None]

    fh, bay = style.floor_h, style.bay
    cols = grid(u - bay / 2, bay, bay * style.window_w / 2, px_u)
    rows = grid(v - fh * 0.55, fh, fh * style.window_h / 2, px_v)
    upper = (v > fh) & (v < top - 0.6)
    window = cols * rows * upper
    if style.shop:
        shop = grid(u - bay, 2 * bay, bay * 0.8, px_u) * band(
            v - 1.5, 1.1, px_v)
    else:
        shop = grid(u - bay / 2, bay, 0.5, px_u) * band(v - 1.1, 1.0, px_v)
    window = np.maximum(window, shop * (v < fh))
    pane = hash01(np.floor(u / bay), np.floor(v / fh), 11)
    glass = style.glass[None] * (0.5 + pane)[:, None]
    glass += np.array([0.1, 0.12, 0.15], np.float32) * (
        (v % fh) / fh)[:, None]
    return base + (glass - base) * window[:, None]


@dataclass(frozen=True)
class Segment:
    """A stretch of one side of the street between depths ``z0``, ``z1``.

    Args:
        side (Side): The side.
        z0 (float): Near end.
        z1 (float): Far end.
        kind (str): 'building', 'vegetation' or 'open' (a gap).
        dist (float): |X| of its facade.
        height (float): Height of the building or trees.
        barrier (str | None): 'wall' or 'fence' along the verge.
        barrier_h (float): Height of the barrier.
    """
    side: Side
    z0: float
    z1: float
    kind: str
    dist: float
    height: float
    barrier: Optional[str]
    barrier_h: float


def plan_segments(rng: np.random.Generator, street: Street,
                  side: Side) -> List[Segment]:
    """Consecutive segments of one side from near the camera to z_end."""
    segments = []
    z = 1.0
    while z < street.z_end:
        length = rng.uniform(8.0, 35.0)
        kind = rng.choice(['building', 'vegetation', 'open'],
                          p=[0.62, 0.26, 0.12])
        barrier = rng.choice(['none', 'wall', 'fence'], p=[0.5, 0.25, 0.25])
        height = (rng.uniform(7.0, 24.0) if kind == 'building' else
                  rng.uniform(3.0, 12.0))
        segments.append(Segment(
            side=side, z0=z, z1=min(z + length, street.z_end), kind=kind,
            dist=side.setback + rng.uniform(0.0, 2.5 if kind == 'building'
                                            else 0.8),
            height=height, barrier=None if barrier == 'none' else barrier,
            barrier_h=rng.uniform(0.9, 2.6)))
        z += length
    return segments


def paint_building(canvas: Canvas, rng: np.random.Generator, cam: Camera,
                   seg: Segment, light: float) -> None:
    """A building: its facade along the street and its near side wall."""
    style = sample_facade_style(rng)
    x = seg.side.sign * seg.dist
    depth = rng.uniform(8.0, 15.0)
    side_wall = cam.project([[x, 0, seg.z0], [x + seg.side.sign * depth, 0,
                                              seg.z0],
                             [x + seg.side.sign * depth, seg.height, seg.z0],
                             [x, seg.height, seg.z0]])
    region = canvas.region(side_wall)
    if region is not None:
        ys, xs = region.coords()
        u, v = cam.on_plane_z(seg.z0, xs, ys)
        px = np.full_like(u, seg.z0 / cam.focal)
        colours = facade_colours(canvas, region, style, u, v, px, px,
                                 seg.height)
        canvas.paint(region, BUILDING, colours * light * 0.8)
    front = cam.project([[x, 0, seg.z0], [x, 0, seg.z1],
                         [x, seg.height, seg.z1], [x, seg.height, seg.z0]])
    region = canvas.region(front)
    if region is None:
        return
    ys, xs = region.coords()
    u, v = cam.on_plane_x(x, xs, ys)
    px_u = u * u / (cam.focal * abs(x))
    px_v = u / cam.focal
    colours = facade_colours(canvas, region, style, u, v, px_u, px_v,
                             seg.height)
    canvas.paint(region, BUILDING, colours * light)


def tree_line(rng: np.random.Generator, points: int, height: float,
              ) -> np.ndarray:
    """Bumpy crown heights (points,) of a row of trees about ``height``."""
    bumps = rng.uniform(0.7, 1.0, points) * height
    return bumps * (1 + 0.15 * np.sin(np.arange(points) * 2.1))


def paint_vegetation_wall(canvas: Canvas, rng: np.random.Generator,
                          cam: Camera, x: float, z0: float, z1: float,
                          height: float, light: float) -> None:
    """A row of trees or a hedge along the plane X = ``x``."""
    n = max(int((z1 - z0) / 2.5), 2) + 1
    zs = np.linspace(z0, z1, n)
    tops = tree_line(rng, n, height)
    pts = [[x, 0, z0]] + [[x, t, z] for z, t in zip(zs, tops)] + [[x, 0, z1]]
    region = canvas.region(cam.project(pts))
    if region is None:
        return
    green = hsv(rng.uniform(75, 130), rng.uniform(0.4, 0.75),
                rng.uniform(0.25, 0.45))
    canvas.paint(region, VEGETATION, leafy(canvas, region, green) * light)


def paint_wall(canvas: Canvas, rng: np.random.Generator, cam: Camera,
               x: float, z0: float, z1: float, height: float,
               light: float) -> None:
    """A free-standing wall (concrete panels or bricks) on X = ``x``."""
    pts = cam.project([[x, 0, z0], [x, 0, z1], [x, height, z1],
                       [x, height, z0]])
    region = canvas.region(pts)
    if region is None:
        return
    ys, xs = region.coords()
    u, v = cam.on_plane_x(x, xs, ys)
    px_u, px_v = u * u / (cam.focal * abs(x)), u / cam.focal
    if rng.random() < 0.3:
        base = pick(rng, [[0.58, 0.36, 0.28], [0.5, 0.42, 0.36]], 0.04)
        row = np.floor(v / 0.08)
        joints = np.maximum(grid(v, 0.08, 0.008, px_v),
                            grid(u + 0.12 * (row % 2), 0.24, 0.008, px_u))
        colours = canvas.texture(region, base, fine=0.05, coarse=0.06)
        colours *= (1 - 0.3 * joints)[:, None]
    else:
        base = pick(rng, [[0.62, 0.62, 0.6], [0.55, 0.57, 0.62],
                          [0.7, 0.66, 0.56], [0.45, 0.46, 0.47]], 0.05)
        panel = rng.uniform(1.5, 4.0)
        seams = grid(u, panel, 0.025, px_u)
        colours = canvas.texture(region, base, fine=0.03, grain=0.03,
                                 medium=0.06, coarse=0.1)
        colours *= (1 - 0.35 * seams)[:, None]
    coping = band(v - height + 0.08, 0.08, px_v)
    colours *= (1 + 0.2 * coping)[:, None]
    canvas.paint(region, WALL, colours * light)


def paint_fence(canvas: Canvas, rng: np.random.Generator, cam: Camera,
                x: float, z0: float, z1: float, height: float,
                light: float) -> None:
    """A fence on X = ``x``: bars, mesh or planks over what lies behind."""
    pts = cam.project([[x, 0, z0], [x, 0, z1], [x, height, z1],
                       [x, height, z0]])
    region = canvas.region(pts)
    if region is None:
        return
    ys, xs = region.coords()
    u, v = cam.on_plane_x(x, xs, ys)
    px_u, px_v = u * u / (cam.focal * abs(x)), u / cam.focal
    style = rng.integers(3)
    if style == 0:  # vertical bars
        spacing = rng.uniform(0.1, 0.25)
        cover = grid(u, spacing, spacing * rng.uniform(0.12, 0.3), px_u)
    elif style == 1:  # diamond mesh
        mesh = rng.uniform(0.08, 0.16)
        cover = np.maximum(grid(u + v, mesh, 0.012, px_u + px_v),
                           grid(u - v, mesh, 0.012, px_u + px_v))
    else:  # planks with gaps
        plank = rng.uniform(0.1, 0.2)
        cover = 1 - 0.8 * grid(u, plank, plank * 0.12, px_u)
    rails = np.maximum(band(v - height + 0.05, 0.05, px_v),
                       band(v - 0.15, 0.05, px_v))
    posts = grid(u, rng.uniform(2.0, 3.0), 0.05, px_u)
    cover = np.maximum(cover, np.maximum(rails, posts))
    colour = pick(rng, [[0.2, 0.32, 0.22], [0.5, 0.5, 0.5], [0.12, 0.12, 0.13],
                        [0.82, 0.82, 0.8], [0.5, 0.36, 0.22]], 0.04)
    bars = canvas.texture(region, colour, fine=0.05, medium=0.05) * light
    behind = canvas.current(region) * 0.8
    canvas.paint(region, FENCE, behind + (bars - behind) * cover[:, None])


def paint_far_end(canvas: Canvas, rng: np.random.Generator, cam: Camera,
                  street: Street) -> None:
    """Buildings and trees across the street's far end (plane Z = z_end)."""
    z = street.z_end
    reach = z * cam.width / cam.focal + 10
    x = -reach
    while x < reach:
        width = rng.uniform(8.0, 30.0)
        height = rng.uniform(6.0, 26.0)
        light = rng.uniform(0.75, 1.05)
        if rng.random() < 0.7:
            pts = cam.billboard(rect(x, 0, x + width, height), z)
            region = canvas.region(pts)
            if region is not None:
                ys, xs = region.coords()
                u, v = cam.on_plane_z(z, xs, ys)
                px = np.full_like(u, z / cam.focal)
                colours = facade_colours(canvas, region,
                                         sample_facade_style(rng),
                                         u, v, px, px, height)
                canvas.paint(region, BUILDING, colours * light)
        else:
            n = max(int(width / 3), 2) + 1
            tops = tree_line(rng, n, height * 0.6)
            pts = [[x, 0]] + [[u, t] for u, t in zip(
                np.linspace(x, x + width, n), tops)] + [[x + width, 0]]
            region = canvas.region(cam.billboard(np.array(pts), z))
            if region is not None:
                green = hsv(rng.uniform(75, 130), rng.uniform(0.4, 0.7),
                            rng.uniform(0.25, 0.45))
                canvas.paint(region, VEGETATION,
                             leafy(canvas, region, green) * light)
        x += width


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


# ----------------------------------------------- poles, lights and signs


def cylinder_shading(region: Region, centre: float,
                     half: float) -> np.ndarray:
    """Brightness (n,) across a vertical cylinder at column ``centre``."""
    _, xs = region.coords()
    t = np.clip((xs - centre) / max(half, 0.5), -1, 1)
    return (0.65 + 0.45 * np.cos(t * np.pi / 2)).astype(np.float32)


def paint_upright(canvas: Canvas, cam: Camera, x: float, z: float,
                  y0: float, y1: float, width: float, colour: np.ndarray,
                  cls: int) -> None:
    """A vertical cylinder (pole, trunk) at least one pixel wide."""
    s = cam.scale(z)
    cx = cam.x_vp + s * x
    half = max(width * s / 2, 0.5)
    top, bottom = cam.ground_row(z) - s * y1, cam.ground_row(z) - s * y0
    region = canvas.region(rect(cx - half, top, cx + half, bottom))
    if region is None:
        return
    shade = cylinder_shading(region, cx, half)
    colours = canvas.texture(region, colour, fine=0.04, medium=0.04)
    canvas.paint(region, cls, colours * shade[:, None])


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


# ------------------------------------------------------------ vegetation


def paint_tree(canvas: Canvas, rng: np.random.Generator, cam: Camera,
               x: float, z: float) -> None:
    """A tree: trunk and a crown of overlapping leafy blobs."""
    trunk_h = rng.uniform(1.8, 3.5)
    paint_upright(canvas, cam, x, z, 0, trunk_h + 0.5,
                  rng.uniform(0.18, 0.4),
                  jitter(rng, [0.32, 0.26, 0.2], 0.04), VEGETATION)
    r = rng.uniform(1.2, 2.6)
    blobs = [ellipse(x, trunk_h + r * 0.9, r, r * 0.9, 24)]
    for _ in range(int(rng.integers(2, 6))):
        cx = x + rng.uniform(-0.8, 0.8) * r
        cy = trunk_h + r * rng.uniform(0.6, 1.4)
        rr = r * rng.uniform(0.45, 0.75)
        blobs.append(ellipse(cx, cy, rr, rr * rng.uniform(0.8, 1.1), 16))
    region = canvas.region(*[cam.billboard(b, z) for b in blobs])
    if region is None:
        return
    green = hsv(rng.uniform(60, 130) if rng.random() < 0.9 else
                rng.uniform(30, 50), rng.uniform(0.4, 0.75),
                rng.uniform(0.28, 0.5))
    canvas.paint(region, VEGETATION, leafy(canvas, region, green))


def plan_trees(rng: np.random.Generator, cam: Camera,
               street: Street) -> List[Planned]:
    """Rows of trees on sidewalks or terrain strips."""
    items = []
    for side in street.sides:
        if rng.random() > 0.55:
            continue
        if side.verge > side.walk:
            dist = (side.walk + side.verge) / 2
        else:
            dist = side.walk - 0.7
        z = cam.near_z * rng.uniform(1.2, 3.0)
        while z < min(street.z_end - 5, 80.0):
            x = side.sign * (dist + rng.uniform(-0.3, 0.3))
            items.append((z, partial(paint_tree, x=x, z=z, cam=cam)))
            z += rng.uniform(7.0, 16.0)
    return items


# --------------------------------------------------------------- vehicles


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


def paint_contact_shadow(canvas: Canvas, cam: Camera, x: float, z: float,
                         half_w: float, length: float,
                         strength: float = 0.55) -> None:
    """Darken the ground under an object (image only, soft edges)."""
    pts = cam.project([[x - half_w, 0, z], [x + half_w, 0, z],
                       [x + half_w, 0, z + length],
                       [x - half_w, 0, z + length]])
    region = canvas.region(pts)
    if region is None:
        return
    ys, xs = region.coords()
    gx, gz = cam.on_ground(xs, ys)
    q = ((gx - x) / half_w) ** 2 + ((gz - z - length / 2) / (length / 2)) ** 2
    canvas.darken(region, (1 - strength * np.clip(1.2 - q, 0, 1)
                           ).astype(np.float32))


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


def paint_car(canvas: Canvas, rng: np.random.Generator, cam: Camera,
              veh: Vehicle) -> None:
    """A passenger car: body, cabin, windows, wheels, lights."""
    body = Body(canvas, cam, veh)
    paint = vehicle_colour(rng, CAR)
    glass = jitter(rng, [0.15, 0.18, 0.22], 0.03)
    tyre = jitter(rng, [0.07, 0.07, 0.08], 0.01)
    w, h, length = veh.width, veh.height, veh.length
    belt = h * rng.uniform(0.52, 0.6)
    # side face
    body.side(rect(0, 0.15, length, belt), paint, fine=0.03, medium=0.04)
    cabin = np.array([[0.1 * length, belt], [0.9 * length, belt],
                      [0.72 * length, h], [0.3 * length, h]])
    body.side(cabin, paint * 0.92, fine=0.03)
    inset = np.array([[0.16 * length, belt + 0.05], [0.84 * length,
                                                     belt + 0.05],
                      [0.7 * length, h - 0.07], [0.32 * length, h - 0.07]])
    body.side(inset, glass, fine=0.03, medium=0.05)
    body.side(rect(0.49 * length, belt, 0.53 * length, h), paint * 0.85)
    body.wheels((0.18 * length, 0.8 * length), 0.32, tyre)
    # near face
    body.near(rect(-w / 2, 0, w / 2, 0.25), tyre, fine=0.05)
    body.near(rect(-w / 2, 0.18, w / 2, belt), paint, fine=0.03, medium=0.04)
    body.near(np.array([[-0.44 * w, belt], [0.44 * w, belt],
                        [0.32 * w, h], [-0.32 * w, h]]), paint * 0.92)
    body.near(np.array([[-0.38 * w, belt + 0.05], [0.38 * w, belt + 0.05],
                        [0.29 * w, h - 0.06], [-0.29 * w, h - 0.06]]),
              glass, fine=0.03, medium=0.05)
    lamp = ([0.85, 0.1, 0.08] if veh.facing > 0 else [0.95, 0.93, 0.8])
    for sign in (-1, 1):
        body.near(rect(sign * 0.47 * w, belt - 0.17, sign * 0.3 * w,
                       belt - 0.05), jitter(rng, lamp, 0.03))
    body.near(rect(-0.24, 0.3, 0.24, 0.42), jitter(rng, [0.9, 0.9, 0.85]))


def paint_truck(canvas: Canvas, rng: np.random.Generator, cam: Camera,
                veh: Vehicle) -> None:
    """A lorry: tall cargo box, lower cab, chassis and twin wheels."""
    body = Body(canvas, cam, veh)
    box_colour = vehicle_colour(rng, TRUCK)
    cab_colour = vehicle_colour(rng, TRUCK)
    glass = jitter(rng, [0.15, 0.18, 0.22], 0.03)
    tyre = jitter(rng, [0.07, 0.07, 0.08], 0.01)
    dark = jitter(rng, [0.12, 0.12, 0.12], 0.02)
    w, h, length = veh.width, veh.height, veh.length
    cab_h, cab_l = h * rng.uniform(0.72, 0.85), rng.uniform(2.0, 2.4)
    if veh.facing > 0:  # cab at the far end
        box_t, cab_t = (0, length - cab_l - 0.2), (length - cab_l, length)
    else:
        box_t, cab_t = (cab_l + 0.2, length), (0, cab_l)
    body.side(rect(0, 0.4, length, 1.0), dark, fine=0.05)
    body.side(rect(box_t[0], 0.95, box_t[1], h), box_colour, fine=0.03,
              medium=0.04, coarse=0.04)
    body.side(rect(cab_t[0], 0.5, cab_t[1], cab_h), cab_colour, fine=0.03)
    window_t = (cab_t[0] + 0.25, cab_t[1] - 0.6) if veh.facing > 0 else (
        cab_t[0] + 0.6, cab_t[1] - 0.25)
    body.side(rect(window_t[0], cab_h * 0.62, window_t[1], cab_h - 0.15),
              glass)
    body.wheels((0.5 * (cab_t[0] + cab_t[1]), box_t[0] + 1.2,
                 box_t[1] - 1.2), 0.5, tyre)
    body.near(rect(-w / 2, 0, w / 2, 0.95), dark, fine=0.05)
    for sign in (-1, 1):
        body.near(rect(sign * 0.48 * w, 0, sign * 0.2 * w, 0.95), tyre)
    if veh.facing > 0:
        body.near(rect(-w / 2, 0.95, w / 2, h), box_colour, fine=0.03,
                  medium=0.04, coarse=0.04)
        body.near(rect(-0.02, 1.0, 0.02, h - 0.05), box_colour * 0.6)
        for sign in (-1, 1):
            body.near(rect(sign * 0.46 * w, 0.75, sign * 0.3 * w, 0.9),
                      jitter(rng, [0.85, 0.1, 0.08]))
    else:
        body.near(rect(-w / 2, cab_h, w / 2, h), box_colour * 0.9, fine=0.03)
        body.near(rect(-w / 2, 0.5, w / 2, cab_h), cab_colour, fine=0.03)
        body.near(rect(-0.45 * w, cab_h * 0.58, 0.45 * w, cab_h - 0.12),
                  glass, medium=0.05)
        body.near(rect(-0.35 * w, 0.6, 0.35 * w, 1.0), dark)


def paint_bus(canvas: Canvas, rng: np.random.Generator, cam: Camera,
              veh: Vehicle) -> None:
    """A bus: long box with a band of windows, doors and two axles."""
    body = Body(canvas, cam, veh)
    colour = vehicle_colour(rng, BUS)
    glass = jitter(rng, [0.14, 0.17, 0.2], 0.03)
    tyre = jitter(rng, [0.07, 0.07, 0.08], 0.01)
    w, h, length = veh.width, veh.height, veh.length
    sill = rng.uniform(1.05, 1.3)
    body.side(rect(0, 0.3, length, h), colour, fine=0.03, medium=0.04)
    body.side(rect(0, 0.3, length, 0.55), colour * 0.55)
    body.side(rect(0.04 * length, sill, 0.96 * length, h - 0.35), glass,
              medium=0.05)
    for t in (0.15, 0.55):
        body.side(rect(t * length, 0.35, t * length + 1.1, h - 0.35),
                  glass * 0.8)
    posts = np.arange(0.04 * length + 1.4, 0.96 * length, 1.4)
    for t in posts:
        body.side(rect(t - 0.05, sill, t + 0.05, h - 0.35), colour * 0.5)
    body.wheels((0.2 * length, 0.78 * length), 0.5, tyre)
    body.near(rect(-w / 2, 0.05, w / 2, h), colour, fine=0.03, medium=0.04)
    body.near(rect(-w / 2, 0.05, w / 2, 0.45), colour * 0.55)
    if veh.facing > 0:
        body.near(rect(-0.38 * w, h - 1.1, 0.38 * w, h - 0.3), glass)
        body.near(rect(-0.35 * w, 0.6, 0.35 * w, 1.2), colour * 0.7)
        lamp = [0.85, 0.1, 0.08]
    else:
        body.near(rect(-0.46 * w, 1.0, 0.46 * w, h - 0.2), glass,
                  medium=0.05)
        body.near(rect(-0.35 * w, h - 0.18, 0.35 * w, h - 0.04),
                  jitter(rng, [0.9, 0.55, 0.1]))
        lamp = [0.95, 0.93, 0.8]
    for sign in (-1, 1):
        body.near(rect(sign * 0.47 * w, 0.5, sign * 0.36 * w, 0.8),
                  jitter(rng, lamp, 0.03))


def paint_tram(canvas: Canvas, rng: np.random.Generator, cam: Camera,
               veh: Vehicle) -> None:
    """A tram (the 'train' class): long, low-floored, with a pantograph."""
    body = Body(canvas, cam, veh)
    colour = vehicle_colour(rng, TRAIN)
    stripe = pick(rng, [[0.8, 0.1, 0.1], [0.2, 0.3, 0.6], [0.3, 0.3, 0.3],
                        [0.1, 0.5, 0.3]], 0.03)
    glass = jitter(rng, [0.13, 0.16, 0.2], 0.03)
    dark = jitter(rng, [0.15, 0.15, 0.16], 0.02)
    w, h, length = veh.width, veh.height, veh.length
    sill = rng.uniform(0.95, 1.2)
    arm = min(length * 0.4, 8.0)
    for a, b in (((arm - 0.8, h), (arm, h + 0.9)),
                 ((arm, h + 0.9), (arm + 0.9, h + 0.95))):
        body.side(stroke(a, b, 0.07), dark)
        body.near(stroke((0, a[1]), (0.15, b[1]), 0.07), dark)
    body.side(rect(0, 0.25, length, h), colour, fine=0.03, medium=0.03)
    body.side(rect(0, 0.25, length, 0.5), dark)
    body.side(rect(0, sill - 0.25, length, sill - 0.1), stripe)
    body.side(rect(0.03 * length, sill, 0.97 * length, h - 0.45), glass,
              medium=0.05)
    spacing = rng.uniform(1.6, 2.4)
    for t in np.arange(0.03 * length + spacing, 0.97 * length, spacing):
        body.side(rect(t - 0.06, sill, t + 0.06, h - 0.45), colour * 0.8)
    for t in np.arange(0.12, 0.95, 0.22) * length:
        body.side(rect(t, 0.35, t + 1.3, h - 0.45), glass * 0.75)
    front = np.array([[-w / 2, 0.25], [w / 2, 0.25], [w / 2, h - 0.35],
                      [0.38 * w, h], [-0.38 * w, h], [-w / 2, h - 0.35]])
    body.near(front, colour, fine=0.03, medium=0.03)
    body.near(rect(-w / 2, 0.25, w / 2, 0.5), dark)
    body.near(rect(-w / 2, sill - 0.25, w / 2, sill - 0.1), stripe)
    body.near(rect(-0.44 * w, sill + 0.1, 0.44 * w, h - 0.3), glass,
              medium=0.05)
    for sign in (-1, 1):
        body.near(rect(sign * 0.45 * w, 0.6, sign * 0.32 * w, 0.8),
                  jitter(rng, [0.95, 0.93, 0.8], 0.03))


def paint_vehicle(canvas: Canvas, rng: np.random.Generator, cam: Camera,
                  veh: Vehicle) -> None:
    """Contact shadow, then the vehicle of ``veh.kind``."""
    paint_contact_shadow(canvas, cam, veh.x, veh.z - 0.2,
                         veh.width * 0.6, veh.length + 0.4)
    painter = {CAR: paint_car, TRUCK: paint_truck, BUS: paint_bus,
               TRAIN: paint_tram}[veh.kind]
    painter(canvas, rng, cam, veh)


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


# ---------------------------------------------- persons, riders, bicycles


@dataclass(frozen=True)
class Outfit:
    """Colours of a person."""
    skin: np.ndarray
    hair: np.ndarray
    top: np.ndarray
    legs: np.ndarray
    shoes: np.ndarray


def sample_outfit(rng: np.random.Generator) -> Outfit:
    """Random clothes, skin and hair colours."""
    def cloth() -> np.ndarray:
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


def paint_wheel(canvas: Canvas, cam: Camera, cx: float, cy: float,
                radius: float, tyre_w: float, z: float, cls: int,
                tyre: np.ndarray, solid: bool) -> None:
    """A wheel seen from the side; see-through between spokes unless solid.

    The whole disc is labelled ``cls``; the image shows the tyre ring, a
    hub and (unless ``solid``) the darkened background inside.
    """
    region = canvas.region(cam.billboard(ellipse(cx, cy, radius, radius, 24),
                                         z))
    if region is None:
        return
    s = cam.scale(z)
    ys, xs = region.coords()
    centre = cam.billboard(np.array([[cx, cy]]), z)[0]
    dist = np.hypot(xs - centre[0], ys - centre[1]) / s
    ring = band(dist - radius + tyre_w / 2, tyre_w / 2, np.full_like(
        dist, 1 / s))
    hub = band(dist, 0.05 if not solid else radius * 0.4, np.full_like(
        dist, 1 / s))
    inside = tyre * 3.0 if solid else canvas.current(region) * 0.75
    colours = inside + (tyre[None] - inside) * ring[:, None]
    colours += (tyre * 5.0 - colours) * hub[:, None]
    canvas.paint(region, cls, colours)


def paint_bicycle(canvas: Canvas, rng: np.random.Generator, cam: Camera,
                  x: float, z: float, direction: int) -> Tuple[float, float]:
    """A bicycle in side view; returns (seat X, handlebar X)."""
    frame = hsv(rng.uniform(0, 360), rng.uniform(0.2, 0.9),
                rng.uniform(0.15, 0.85))
    tyre = jitter(rng, [0.08, 0.08, 0.08], 0.01)
    r, base = rng.uniform(0.31, 0.36), rng.uniform(0.95, 1.1)
    rear, front = x - direction * base / 2, x + direction * base / 2
    for cx in (rear, front):
        paint_wheel(canvas, cam, cx, r, r, 0.05, z, BICYCLE, tyre, False)
    crank = (x - direction * 0.05, r)
    seat = (x - direction * 0.22, r + 0.55)
    head = (front - direction * 0.12, r + 0.55)
    bar = (front - direction * 0.15, r + 0.72)
    tubes = [((rear, r), crank), ((rear, r), seat), (crank, seat),
             (crank, head), (seat, head), (head, (front, r)), (head, bar)]
    width = max(0.04, 1.0 / cam.scale(z))
    polys = [cam.billboard(stroke(a, b, width), z) for a, b in tubes]
    polys.append(cam.billboard(rect(seat[0] - 0.1, seat[1], seat[0] + 0.1,
                                    seat[1] + 0.05), z))
    canvas.fill(polys, BICYCLE, frame, fine=0.04)
    return seat[0], bar[0]


def paint_motorcycle(canvas: Canvas, rng: np.random.Generator, cam: Camera,
                     x: float, z: float, direction: int) -> Tuple[float,
                                                                  float]:
    """A motorcycle in side view; returns (seat X, handlebar X)."""
    colour = pick(rng, [[0.7, 0.1, 0.1], [0.1, 0.1, 0.1], [0.15, 0.25, 0.6],
                        [0.75, 0.75, 0.78], [0.9, 0.55, 0.1]], 0.03)
    tyre = jitter(rng, [0.07, 0.07, 0.07], 0.01)
    r, base = rng.uniform(0.29, 0.33), rng.uniform(1.3, 1.5)
    rear, front = x - direction * base / 2, x + direction * base / 2
    d = direction
    for cx in (rear, front):
        paint_wheel(canvas, cam, cx, r, r, 0.1, z, MOTORCYCLE, tyre, True)
    shell = np.array([[rear - d * 0.1, r + 0.25], [x - d * 0.45, r + 0.5],
                      [x + d * 0.05, r + 0.5], [x + d * 0.35, r + 0.62],
                      [front - d * 0.15, r + 0.62], [front - d * 0.05, r],
                      [x + d * 0.25, 0.2], [x - d * 0.3, 0.25]])
    canvas.fill([cam.billboard(shell, z)], MOTORCYCLE, colour, fine=0.04,
                medium=0.04)
    engine = rect(x - 0.25, 0.18, x + 0.25, r + 0.2)
    canvas.fill([cam.billboard(engine, z)], MOTORCYCLE,
                jitter(rng, [0.4, 0.4, 0.42]), fine=0.08)
    bar = (front - d * 0.25, r + 0.85)
    fork = stroke((front, r), bar, 0.06)
    canvas.fill([cam.billboard(fork, z)], MOTORCYCLE, tyre * 3, fine=0.04)
    return x - d * 0.25, bar[0]


def paint_rider(canvas: Canvas, rng: np.random.Generator, cam: Camera,
                x: float, z: float, motor: bool, parked: bool) -> None:
    """A bicycle or motorcycle crossing the view, with a rider unless parked.

    Args:
        canvas (Canvas): Target.
        rng (np.random.Generator): Randomness.
        cam (Camera): Camera.
        x (float): X of the vehicle's centre.
        z (float): Depth of its plane.
        motor (bool): Motorcycle instead of bicycle.
        parked (bool): No rider.
    """
    direction = int(rng.choice([-1, 1]))
    paint_contact_shadow(canvas, cam, x, z - 0.2, 0.9, 0.4, 0.4)
    if motor:
        seat, bar = paint_motorcycle(canvas, rng, cam, x, z, direction)
        hip = 0.95
    else:
        seat, bar = paint_bicycle(canvas, rng, cam, x, z, direction)
        hip = 1.0
    if parked:
        return
    outfit = sample_outfit(rng)
    if motor and rng.random() < 0.8:  # helmet
        outfit = Outfit(outfit.skin, pick(rng, [[0.1, 0.1, 0.1],
                                                [0.9, 0.9, 0.9],
                                                [0.7, 0.1, 0.1]]),
                        outfit.top, outfit.legs, outfit.shoes)
    lean = (bar - seat) * rng.uniform(0.25, 0.45)
    parts = person_parts(outfit, seat, rng.uniform(1.55, 1.9), 0.0,
                         seated=(hip, direction * 0.4), lean=lean)
    for poly, colour in parts:
        canvas.fill([cam.billboard(poly, z)], RIDER, colour, fine=0.04,
                    medium=0.04)


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


# ------------------------------------------------------- camera and light


def paint_ego_hood(canvas: Canvas, rng: np.random.Generator) -> None:
    """Sometimes a thin strip of the own car's bonnet (ignore label)."""
    if rng.random() > 0.3:
        return
    h, w = canvas.height, canvas.width
    rise = h * rng.uniform(0.02, 0.06)
    pts = ellipse(w / 2 + rng.uniform(-0.05, 0.05) * w, h + h * 0.3,
                  w * rng.uniform(0.55, 0.8), h * 0.3 + rise, 48)
    canvas.fill([pts], IGNORE_INDEX, jitter(rng, [0.15, 0.16, 0.18]),
                medium=0.1, coarse=0.1)


def finish_image(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Global lighting and camera effects, then 8-bit RGB.

    Brightness, contrast, colour temperature, gamma and vignetting vary per
    image; a mild blur and sensor noise are added last.
    """
    h, w = image.shape[:2]
    mean = image.mean(axis=(0, 1), keepdims=True)
    image = (image - mean) * rng.uniform(0.8, 1.2) + mean
    image = image * rng.uniform(0.75, 1.2)
    warm = rng.uniform(-0.08, 0.08)
    image = image * np.array([1 + warm, 1.0, 1 - warm], np.float32)
    image = np.clip(image, 0, 1) ** rng.uniform(0.85, 1.15)
    across = ((np.arange(w, dtype=np.float32) - w / 2) / (w / 2)) ** 2
    down = ((np.arange(h, dtype=np.float32) - h / 2) / (h / 2)) ** 2
    vignette = 1 - rng.uniform(0.0, 0.25) * (down[:, None] + across[None]) / 2
    image = image * vignette[..., None]
    image = cv2.GaussianBlur(image.astype(np.float32), (0, 0),
                             rng.uniform(0.35, 0.9))
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    image = image + noise * rng.uniform(0.004, 0.02)
    return np.clip(np.round(image * 255), 0, 255).astype(np.uint8)


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
