"""How much a sweep adds to its runs: per finished run, the wall time of
its process against the time its Runner spent training and testing.

Usage:
    python tools/benchmarks/benchmark_sweep_overhead.py SWEEP_DIR

Overhead = wall (process start to row written) - train - test: starting
the process, reading the config, building the model, checking the grid,
measuring FLOPs and latency, writing the row. Printed per run and as the
median share of a run's training time. It reads the timings the sweep's
runs recorded (``moe_seg_plugin/evaluation/sweep_overhead.py``), so it
times nothing itself and takes no ``--device``.
"""
import argparse
import sys


def parse_args(argv=None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('sweep_dir')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from moe_seg_plugin.engine import clear_errors
    from moe_seg_plugin.evaluation.sweep_overhead import (median_share,
                                                          sweep_overheads)
    ok, rows = clear_errors(lambda: sweep_overheads(args.sweep_dir))
    if not ok:
        return 2
    if not rows:
        print('no finished run with timings (local runs record them)')
        return 1
    print('| run | wall (s) | train (s) | test (s) | overhead (s) | '
          'overhead / train |')
    print('|---|---:|---:|---:|---:|---:|')
    for run_id, wall, train, test, overhead, share in rows:
        print(f'| {run_id} | {wall:.1f} | {train:.1f} | {test:.1f} | '
              f'{overhead:.1f} | {100 * share:.1f} % |')
    print(f'median overhead: {100 * median_share(rows):.1f} % of a run\'s '
          f'training time ({len(rows)} runs)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
