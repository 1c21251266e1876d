"""Inference latency of a model, measured the same way for every model."""
import statistics
import time
from typing import Callable, Dict

import torch


@torch.no_grad()
def measure_latency(run: Callable[[], object],
                    warmup: int = 3,
                    repeats: int = 10) -> Dict[str, float]:
    """Time ``run()`` after a warm-up.

    Args:
        run (callable): One inference (e.g. ``lambda: model(x, mode=
            'tensor')``).
        warmup (int): Untimed calls first.
        repeats (int): Timed calls.

    Returns:
        dict: ``median_ms``, ``min_ms``, ``max_ms`` over the timed calls.
    """
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (
        lambda: None)
    for _ in range(warmup):
        run()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return dict(median_ms=statistics.median(times), min_ms=min(times),
                max_ms=max(times))
