"""The sky: a gradient with clouds, painted over the whole image first."""
import numpy as np

from .camera import Camera
from .canvas import Canvas
from .classes import SKY
from .colours import jitter
from .noise import smooth_noise


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
