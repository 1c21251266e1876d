"""Inference latency of a model, measured the same way for every model."""
import statistics
import time
from typing import Callable, Dict, List, Mapping, Optional, Union

import torch


def _synchronizer(device: Union[None, str, torch.device]) -> Callable:
    """Waits for queued GPU work before a clock is read (no-op on CPU).

    Args:
        device: The device the runs use; None: CUDA if available.
    """
    if device is None:
        on_gpu = torch.cuda.is_available()
    else:
        on_gpu = torch.device(device).type == 'cuda'
    return torch.cuda.synchronize if on_gpu else (lambda: None)


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


def latency_stats(times_ms: List[float]) -> Dict[str, object]:
    """Median and spread of timings in ms.

    Returns:
        dict: ``median_ms``, ``mean_ms``, ``min_ms``, ``max_ms``, ``q1_ms``,
        ``q3_ms``, ``iqr_ms`` (q3 - q1; quartiles interpolated as
        ``statistics.quantiles(method='inclusive')``) and ``times_ms``.
    """
    if not times_ms:
        raise ValueError('latency_stats: no timings')
    if len(times_ms) > 1:
        q1, _, q3 = statistics.quantiles(times_ms, n=4, method='inclusive')
    else:
        q1 = q3 = times_ms[0]
    return dict(median_ms=statistics.median(times_ms),
                mean_ms=statistics.fmean(times_ms), min_ms=min(times_ms),
                max_ms=max(times_ms), q1_ms=q1, q3_ms=q3, iqr_ms=q3 - q1,
                times_ms=list(times_ms))


def round_order(names: List[str], round_index: int) -> List[str]:
    """The order of the runs in one round: rotated by one per round (for
    two runs: A B, B A, A B, ...), so neither always runs first."""
    shift = round_index % len(names)
    return names[shift:] + names[:shift]


@torch.no_grad()
def compare_latency(runs: Mapping[str, Callable[[], object]],
                    warmup: int = 3,
                    repeats: int = 10,
                    device: Union[None, str, torch.device] = None,
                    clock: Optional[Callable[[], float]] = None
                    ) -> Dict[str, Dict[str, object]]:
    """Time several inferences in one process, interleaved.

    Each round times every run once, in an order rotated per round, so
    drifts of the machine (other load, clock speed, caches) reach all runs
    alike. Warm-up rounds come first, untimed.

    Args:
        runs (dict[str, callable]): One inference per name, e.g.
            ``{'moe': lambda: moe(x), 'stock': lambda: stock(x)}``.
        warmup (int): Untimed rounds. Default: 3.
        repeats (int): Timed rounds. Default: 10.
        device: Device of the runs; on CUDA the clock is read only after
            the queued work is done. Default: CUDA if available.
        clock (callable, optional): Seconds as float. Default:
            ``time.perf_counter``.

    Returns:
        dict: Per name, :func:`latency_stats` of its timed calls.
    """
    if not runs:
        raise ValueError('compare_latency: give at least one run')
    if repeats < 1 or warmup < 0:
        raise ValueError(f'compare_latency: repeats must be >= 1 and warmup '
                         f'>= 0, got repeats={repeats}, warmup={warmup}')
    clock = clock or time.perf_counter
    sync = _synchronizer(device)
    names = list(runs)
    for index in range(warmup):
        for name in round_order(names, index):
            runs[name]()
    sync()
    times: Dict[str, List[float]] = {name: [] for name in names}
    for index in range(repeats):
        for name in round_order(names, index):
            start = clock()
            runs[name]()
            sync()
            times[name].append((clock() - start) * 1000)
    return {name: latency_stats(times[name]) for name in names}


def latency_ratio(results: Mapping[str, Mapping[str, object]],
                  numerator: str, denominator: str) -> Dict[str, float]:
    """How much slower ``numerator`` ran than ``denominator``.

    Returns:
        dict: ``ratio`` (ratio of the medians) and ``paired_ratio`` (median
        of the per-round ratios; the rounds were timed side by side).
    """
    top, bottom = results[numerator], results[denominator]
    paired = [a / b for a, b in zip(top['times_ms'], bottom['times_ms'])]
    return dict(ratio=top['median_ms'] / bottom['median_ms'],
                paired_ratio=statistics.median(paired))
