"""Buildings: facade styles, facade textures and painting a building."""
from dataclasses import dataclass

import numpy as np

from .camera import Camera
from .canvas import Canvas, Region
from .classes import BUILDING
from .colours import jitter, pick
from .coverage import band, grid
from .noise import hash01
from .segments import Segment


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
