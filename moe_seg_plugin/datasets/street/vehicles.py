"""Painters of cars, trucks, buses and trams."""
import numpy as np

from .camera import Camera
from .canvas import Canvas
from .classes import BUS, CAR, TRAIN, TRUCK
from .colours import jitter, pick
from .shadows import paint_contact_shadow
from .shapes import rect, stroke
from .vehicle_body import Body, Vehicle, vehicle_colour


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
