"""Paper-style tables, plots and the findings check of sweep directories.

For each SWEEP_DIR (written by tools/analysis_tools/sweep.py) writes
table.md and table.csv (per architecture and value: runs done / failed, mIoU mean ± std
over seeds, the paired difference to the stock baseline with its spread,
params +%, GFLOPs +%, latency ratio, usage entropy, dominant share, dead
experts, importance CV^2) and the PNG plots miou_<arch>.png,
usage_entropy_<arch>.png and expert_given_class_<arch>.png. Then checks the
paper's findings over all the sweeps and writes findings.md. A difference
inside the seed spread is marked as such and is never a finding.

Output: into each SWEEP_DIR, findings.md into the first; with --out-dir,
into DIR (one sweep) or DIR/<sweep dir name>/ (several), findings.md into
DIR. Prints each table, the findings and the files written.

Runs whose row.json cannot be read (cut short, not JSON) are listed as
broken in table.md and left out; the tool then prints one error line per
such sweep and exits with 1 (2 for bad input, when nothing is written).

Usage:
    python tools/analysis_tools/sweep_report.py SWEEP_DIR [SWEEP_DIR ...] \
        [--out-dir DIR]
        [--no-plots]
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional, Tuple


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\nUsage:')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('sweep_dirs', nargs='+', metavar='SWEEP_DIR',
                        help='sweep directory written by '
                        'tools/analysis_tools/sweep.py')
    parser.add_argument(
        '--out-dir', metavar='DIR',
        help='where the reports go (default: each sweep dir; findings.md '
        'into the first)')
    parser.add_argument('--no-plots', action='store_true',
                        help='write the tables and findings only')
    return parser.parse_args(argv)


def out_dirs(sweep_dirs: List[str], out_dir: Optional[str]) -> List[str]:
    """Where each sweep's tables and plots go.

    Args:
        sweep_dirs (list[str]): The sweep directories.
        out_dir (str, optional): --out-dir.

    Returns:
        list[str]: One folder per sweep directory.
    """
    if out_dir is None:
        return list(sweep_dirs)
    if len(sweep_dirs) == 1:
        return [out_dir]
    names = [osp.basename(osp.normpath(d)) for d in sweep_dirs]
    if len(set(names)) < len(names):
        names = [f'{i}_{name}' for i, name in enumerate(names)]
    return [osp.join(out_dir, name) for name in names]


def check_inputs(args: argparse.Namespace) -> List[object]:
    """Every sweep directory and output folder, checked before anything is
    written.

    Returns:
        list[SweepRuns]: The runs of each sweep directory.

    Raises:
        SetupError: For a path that is not a sweep directory, a sweep
            without a readable row, or an output folder that is a file.
    """
    from moe_seg_plugin.sweep.files import check_folder
    from moe_seg_plugin.sweep.report import check_ended, load_runs
    found = []
    for sweep_dir in args.sweep_dirs:
        runs = load_runs(sweep_dir)
        check_ended(sweep_dir, runs)
        found.append(runs)
    if args.out_dir is not None:
        check_folder(args.out_dir, '--out-dir')
        for target in out_dirs(args.sweep_dirs, args.out_dir):
            check_folder(target, '--out-dir')
    return found


def report(args: argparse.Namespace) -> Tuple[List[str], List[str]]:
    """Write every sweep's tables and plots, then findings.md; print the
    tables and the paths.

    Returns:
        tuple: (the files written, one line per sweep with runs whose row
        cannot be read: they are listed as broken in its table.md).
    """
    from moe_seg_plugin.sweep.findings import write_findings
    from moe_seg_plugin.sweep.outputs import write_tables
    from moe_seg_plugin.sweep.report import broken_summary
    found = check_inputs(args)
    written, problems = [], []
    for sweep_dir, target, runs in zip(
            args.sweep_dirs, out_dirs(args.sweep_dirs, args.out_dir), found):
        files = write_tables(sweep_dir, target, plots=not args.no_plots)
        with open(files[0], encoding='utf-8') as file:
            print(file.read(), flush=True)
        written += files
        problem = broken_summary(sweep_dir, runs, files[0])
        problems += [problem] if problem else []
    findings = write_findings(args.sweep_dirs,
                              args.out_dir or args.sweep_dirs[0])
    with open(findings, encoding='utf-8') as file:
        print(file.read(), flush=True)
    written.append(findings)
    print('written:\n' + '\n'.join(f'  {path}' for path in written),
          flush=True)
    return written, problems


def main(argv: Optional[list] = None) -> int:
    """Returns: the exit code: 0, 1 if a sweep has runs whose row cannot
    be read (the reports are written, those runs listed as broken), 2
    after a set-up error (nothing written)."""
    from moe_seg_plugin.engine import clear_errors
    args = parse_args(argv)
    done, result = clear_errors(lambda: report(args))
    if not done:
        return 2
    for problem in result[1]:
        print(f'error: {problem}', file=sys.stderr, flush=True)
    return 1 if result[1] else 0


if __name__ == '__main__':
    sys.exit(main())
