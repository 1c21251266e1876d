"""The ground plane: road with markings, sidewalks, kerbs and terrain."""
import numpy as np

from .camera import Camera
from .canvas import Canvas, Region
from .classes import ROAD, SIDEWALK, TERRAIN
from .colours import hsv, jitter, pick
from .coverage import band, grid
from .noise import hash01
from .street_layout import Street


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
