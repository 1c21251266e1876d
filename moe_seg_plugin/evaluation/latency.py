"""Inference latency of a model, measured the same way for every model.

One timing loop serves every benchmark: :func:`compare_latency` times
several runs in one process, in alternating rounds after untimed warm-up
rounds, and reports medians (on CUDA the clock is read only after the
queued GPU work is done).
"""
import statistics
import time
from typing import Callable, Dict, List, Mapping, Optional, Union

import torch

Device = Union[None, str, torch.device]


def on_cuda(device: Device) -> bool:
    """Whether runs on ``device`` queue their work on a GPU.

    Args:
        device: A device; None: CUDA if available.

    Returns:
        bool: True for a CUDA device.
    """
    if device is None:
        return torch.cuda.is_available()
    return torch.device(device).type == 'cuda'


def _synchronizer(device: Device) -> Callable[[], None]:
    """Waits for queued GPU work before a clock is read (no-op on CPU).

    Args:
        device: The device the runs use; None: CUDA if available.

    Returns:
        callable: ``torch.cuda.synchronize`` or a no-op.
    """
    return torch.cuda.synchronize if on_cuda(device) else (lambda: None)


@torch.no_grad()
def measure_latency(run: Callable[[], object],
                    warmup: int = 3,
                    repeats: int = 10) -> Dict[str, float]:
    """Time ``run()`` after a warm-up (CUDA synchronised if available).

    Args:
        run (callable): One inference (e.g. ``lambda: model(x, mode=
            'tensor')``).
        warmup (int): Untimed calls first.
        repeats (int): Timed calls.

    Returns:
        dict: ``median_ms``, ``min_ms``, ``max_ms`` over the timed calls.
    """
    stats = compare_latency({'run': run}, warmup, repeats)['run']
    return {key: stats[key] for key in ('median_ms', 'min_ms', 'max_ms')}


def latency_stats(times_ms: List[float]) -> Dict[str, object]:
    """Median and spread of timings in ms.

    Args:
        times_ms (list[float]): One timing per timed call.

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
    two runs: A B, B A, A B, ...), so neither always runs first.

    Args:
        names (list[str]): The runs in their first round's order.
        round_index (int): Which round (0 first).

    Returns:
        list[str]: ``names`` rotated left by ``round_index``.
    """
    shift = round_index % len(names)
    return names[shift:] + names[:shift]


def _check_counts(runs: Mapping, warmup: int, repeats: int) -> None:
    """Raise ValueError for no runs or impossible round counts."""
    if not runs:
        raise ValueError('compare_latency: give at least one run')
    if repeats < 1 or warmup < 0:
        raise ValueError(f'compare_latency: repeats must be >= 1 and warmup '
                         f'>= 0, got repeats={repeats}, warmup={warmup}')


def _timed_ms(run: Callable[[], object], sync: Callable[[], None],
              clock: Callable[[], float]) -> float:
    """Milliseconds of one ``run()``, its queued GPU work included."""
    sync()
    start = clock()
    run()
    sync()
    return (clock() - start) * 1000


@torch.no_grad()
def compare_latency(runs: Mapping[str, Callable[[], object]],
                    warmup: int = 3,
                    repeats: int = 10,
                    device: Device = None,
                    clock: Optional[Callable[[], float]] = None,
                    setup: Optional[Mapping[str, Callable[[], object]]] = None
                    ) -> Dict[str, Dict[str, object]]:
    """Time several inferences in one process, interleaved.

    Each round times every run once, in an order rotated per round, so
    drifts of the machine (other load, clock speed, caches) reach all runs
    alike. Warm-up rounds come first, untimed. Runs are called under
    ``torch.no_grad()``; a run that needs gradients (a training step)
    enables them itself (``torch.enable_grad()``).

    Args:
        runs (dict[str, callable]): One inference per name, e.g.
            ``{'moe': lambda: moe(x), 'stock': lambda: stock(x)}``.
        warmup (int): Untimed rounds. Default: 3.
        repeats (int): Timed rounds. Default: 10.
        device: Device of the runs; on CUDA the clock is read only after
            the queued work is done. Default: CUDA if available.
        clock (callable, optional): Seconds as float. Default:
            ``time.perf_counter``.
        setup (dict[str, callable], optional): Per name, an untimed call
            made before every call of that run (e.g. zeroing gradients or
            setting the layer's top-k for this cell).

    Returns:
        dict: Per name, :func:`latency_stats` of its timed calls.
    """
    _check_counts(runs, warmup, repeats)
    clock = clock or time.perf_counter
    sync = _synchronizer(device)
    setup = setup or {}
    names = list(runs)
    for index in range(warmup):
        for name in round_order(names, index):
            setup.get(name, _nothing)()
            runs[name]()
    times: Dict[str, List[float]] = {name: [] for name in names}
    for index in range(repeats):
        for name in round_order(names, index):
            setup.get(name, _nothing)()
            times[name].append(_timed_ms(runs[name], sync, clock))
    return {name: latency_stats(times[name]) for name in names}


def _nothing() -> None:
    """The setup of a run that needs none."""


def median_ms(results: Mapping[str, Mapping[str, object]]
              ) -> Dict[str, float]:
    """The median of each run of :func:`compare_latency`'s results.

    Args:
        results (dict): :func:`compare_latency`'s answer.

    Returns:
        dict[str, float]: Median milliseconds per name.
    """
    return {name: stats['median_ms'] for name, stats in results.items()}


def latency_ratio(results: Mapping[str, Mapping[str, object]],
                  numerator: str, denominator: str) -> Dict[str, float]:
    """How much slower ``numerator`` ran than ``denominator``.

    Args:
        results (dict): :func:`compare_latency`'s answer.
        numerator (str): The run on top.
        denominator (str): The run below.

    Returns:
        dict: ``ratio`` (ratio of the medians) and ``paired_ratio`` (median
        of the per-round ratios; the rounds were timed side by side).
    """
    top, bottom = results[numerator], results[denominator]
    paired = [a / b for a, b in zip(top['times_ms'], bottom['times_ms'])]
    return dict(ratio=top['median_ms'] / bottom['median_ms'],
                paired_ratio=statistics.median(paired))
