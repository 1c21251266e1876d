"""How much a sweep adds to its runs: per finished run, the wall time of
its process against the time its Runner spent training and testing.

Usage:
    python tools/benchmarks/benchmark_sweep_overhead.py SWEEP_DIR

Overhead = wall (process start to row written) - train - test: starting
the process, reading the config, building the model, checking the grid,
measuring FLOPs and latency, writing the row. Printed per run and as the
median share of a run's training time.
"""
import argparse
import statistics
import sys


def overhead_rows(sweep_dir: str) -> list:
    """(run_id, wall, train, test, overhead, overhead / train) per run
    with timings."""
    from moe_seg_plugin.sweep.report import load_sweep
    _, rows = load_sweep(sweep_dir)
    out = []
    for row in rows:
        seconds = row.get('seconds') or {}
        if row.get('status') != 'done' or 'wall' not in seconds:
            continue
        overhead = seconds['wall'] - seconds['train'] - seconds['test']
        out.append((row['run_id'], seconds['wall'], seconds['train'],
                    seconds['test'], overhead, overhead / seconds['train']))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('sweep_dir')
    args = parser.parse_args(argv)
    from moe_seg_plugin.engine import clear_errors
    ok, rows = clear_errors(lambda: overhead_rows(args.sweep_dir))
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
    median = statistics.median(share for *_, share in rows)
    print(f'median overhead: {100 * median:.1f} % of a run\'s training '
          f'time ({len(rows)} runs)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
