"""Paper-style tables, plots and the findings check of sweep directories.

For each SWEEP_DIR (written by tools/sweep.py) writes table.md and
table.csv (per architecture and value: runs done / failed, mIoU mean ± std
over seeds, the paired difference to the stock baseline with its spread,
params +%, GFLOPs +%, latency ratio, usage entropy, dominant share, dead
experts, importance CV^2) and the PNG plots miou_<arch>.png,
usage_entropy_<arch>.png and expert_given_class_<arch>.png. Then checks the
paper's findings over all the sweeps and writes findings.md. A difference
inside the seed spread is marked as such and is never a finding.

Output: into each SWEEP_DIR, findings.md into the first; with --out-dir,
into DIR (one sweep) or DIR/<sweep dir name>/ (several), findings.md into
DIR. Prints each table, the findings and the files written.

Usage:
    python tools/sweep_report.py SWEEP_DIR [SWEEP_DIR ...] [--out-dir DIR]
        [--no-plots]
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\nUsage:')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('sweep_dirs', nargs='+', metavar='SWEEP_DIR',
                        help='sweep directory written by tools/sweep.py')
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


def report(args: argparse.Namespace) -> List[str]:
    """Write every sweep's tables and plots, then findings.md; print the
    tables and the paths.

    Returns:
        list[str]: The files written.
    """
    from moe_seg_plugin.engine.errors import SetupError
    from moe_seg_plugin.sweep.findings import write_findings
    from moe_seg_plugin.sweep.report import load_sweep, write_tables
    for sweep_dir in args.sweep_dirs:  # every input checked before writing
        if not load_sweep(sweep_dir)[1]:
            raise SetupError(f'{sweep_dir!r}: no run has ended yet; run '
                             f'tools/sweep.py on it first')
    written = []
    for sweep_dir, target in zip(args.sweep_dirs,
                                 out_dirs(args.sweep_dirs, args.out_dir)):
        files = write_tables(sweep_dir, target, plots=not args.no_plots)
        with open(files[0], encoding='utf-8') as file:
            print(file.read(), flush=True)
        written += files
    findings = write_findings(args.sweep_dirs,
                              args.out_dir or args.sweep_dirs[0])
    with open(findings, encoding='utf-8') as file:
        print(file.read(), flush=True)
    written.append(findings)
    print('written:\n' + '\n'.join(f'  {path}' for path in written),
          flush=True)
    return written


def main(argv: Optional[list] = None) -> int:
    from moe_seg_plugin.engine import clear_errors
    args = parse_args(argv)
    done, _ = clear_errors(lambda: report(args))
    return 0 if done else 2


if __name__ == '__main__':
    sys.exit(main())
