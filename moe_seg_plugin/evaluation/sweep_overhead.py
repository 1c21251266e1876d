"""How much a sweep adds to its runs: per finished run, the wall time of
its process against the time its Runner spent training and testing.

Overhead = wall (process start to row written) - train - test: starting
the process, reading the config, building the model, checking the grid,
measuring FLOPs and latency, writing the row.
"""
import statistics
from typing import Iterable, List, NamedTuple


class Overhead(NamedTuple):
    """One finished run's seconds and its overhead."""
    run_id: str
    wall: float
    train: float
    test: float
    overhead: float  # wall - train - test
    share: float  # overhead / train


def overhead_rows(rows: Iterable[dict]) -> List[Overhead]:
    """The overhead of every finished run that recorded its timings.

    Args:
        rows (list[dict]): Sweep rows (``run_id``, ``status`` and
            ``seconds``: ``wall``, ``train``, ``test``).

    Returns:
        list[Overhead]: One per run with status 'done' and a wall time.
    """
    out = []
    for row in rows:
        seconds = row.get('seconds') or {}
        if row.get('status') != 'done' or 'wall' not in seconds:
            continue
        overhead = seconds['wall'] - seconds['train'] - seconds['test']
        out.append(Overhead(row['run_id'], seconds['wall'],
                            seconds['train'], seconds['test'], overhead,
                            overhead / seconds['train']))
    return out


def sweep_overheads(sweep_dir: str) -> List[Overhead]:
    """:func:`overhead_rows` of the runs of the sweep in ``sweep_dir``."""
    from ..sweep.report import load_sweep
    _, rows = load_sweep(sweep_dir)
    return overhead_rows(rows)


def median_share(overheads: List[Overhead]) -> float:
    """The median overhead as a share of a run's training time."""
    return statistics.median(row.share for row in overheads)
