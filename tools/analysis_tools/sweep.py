"""Run an ablation family as a sweep: value x seed per architecture, plus
the stock baseline per seed, each trained and tested through MMEngine's
Runner, one row per run in the sweep directory.

Usage:
    python tools/analysis_tools/sweep.py FAMILY [--archs enet erfnet] \
        [--seeds 0 1 2]
        [--values 2x2 3x3] [--dataset street|cityscapes|bdd100k]
        [--cfg-options key=value ...] [--work-dir DIR] [--jobs N]
        [--executor local|slurm] [--partition P] [--gpus G] [--nodes N]
        [--cpus-per-task C] [--timeout-min M] [--no-wait] [--dry-run]

Run the same command again to resume: finished runs are skipped, a killed
run continues from its last checkpoint. Then:
    python tools/analysis_tools/sweep_report.py DIR
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Run an ablation family (configs/ablations/families/) '
        'as a resumable sweep')
    parser.add_argument('family', help='family name (e.g. grid) or file')
    parser.add_argument('--archs', nargs='+', help='architectures '
                        '(default: every shipped one)')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--values', nargs='+',
                        help="the family's values to run (default: all)")
    parser.add_argument('--dataset', default='street',
                        help='street (built-in scenes), cityscapes or '
                        'bdd100k')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='settings for every run, e.g. '
                        'train_cfg.max_iters=300')
    parser.add_argument('--work-dir', help='sweep directory, a folder '
                        'existing or new (default: work_dirs/sweeps/<family>)')
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs at once (local processes, or Slurm jobs '
                        'of one array running together)')
    parser.add_argument('--executor', choices=['local', 'slurm'],
                        default='local')
    parser.add_argument('--partition', help='Slurm partition')
    parser.add_argument('--gpus', type=int, default=1,
                        help='GPUs per run on Slurm (one task each; 0: one '
                        'CPU task)')
    parser.add_argument('--nodes', type=int, default=1)
    parser.add_argument('--cpus-per-task', type=int, default=4)
    parser.add_argument('--timeout-min', type=int, default=1440)
    parser.add_argument('--no-wait', action='store_true',
                        help='Slurm: submit and return')
    parser.add_argument('--dry-run', action='store_true',
                        help='list the runs and exit')
    return parser.parse_args(argv)


def sweep(args: argparse.Namespace) -> int:
    from moe_seg_plugin.engine.errors import SetupError
    from moe_seg_plugin.sweep.executors import (Progress, SlurmSettings,
                                                run_local, submit_slurm,
                                                wait_slurm)
    from moe_seg_plugin.sweep.family import arch_names, expand, load_family
    from moe_seg_plugin.sweep.files import check_folder
    from moe_seg_plugin.sweep.sweep_dir import (check_run_settings,
                                                record_sweep)
    if args.jobs < 1:
        raise SetupError(f'--jobs must be >= 1, got {args.jobs}')
    if args.executor == 'slurm':
        import shutil
        if shutil.which('sbatch') is None:
            raise SetupError('--executor slurm: sbatch is not on PATH; run '
                             'the sweep where Slurm jobs can be submitted')
    family = load_family(args.family)
    archs = args.archs or arch_names()
    specs = expand(family, archs, args.seeds, args.dataset, args.values)
    sweep_dir = args.work_dir or osp.join('work_dirs', 'sweeps', family.name)
    check_folder(sweep_dir, '--work-dir')
    if args.dry_run:
        for spec in specs:
            print(spec.run_id, spec.config, spec.options,
                  f'(needs {spec.needs})' if spec.needs else '')
        print(f'{len(specs)} runs')
        return 0
    record_sweep(sweep_dir, family, specs, archs, args.seeds, args.dataset)
    check_run_settings(specs, sweep_dir, args.cfg_options)
    print(f'sweep {family.name}: {len(specs)} runs ({len(archs)} archs, '
          f'{len(args.seeds)} seeds, values and the stock baseline) in '
          f'{sweep_dir}', flush=True)
    progress = Progress(len(specs), sweep_dir,
                        print_fn=lambda line: print(line, flush=True))
    if args.executor == 'local':
        rows = run_local(specs, sweep_dir, args.cfg_options, args.jobs,
                         progress)
    else:
        settings = SlurmSettings(args.partition, args.gpus, args.nodes,
                                 args.cpus_per_task, args.timeout_min)
        jobs = submit_slurm(specs, sweep_dir, args.cfg_options, settings,
                            args.jobs, progress.print_fn)
        print(f'submitted {len(jobs)} Slurm jobs: '
              f'{sorted({str(job.job_id) for job in jobs.values()})}')
        if args.no_wait:
            print('run this command again (or '
                  'tools/analysis_tools/sweep_report.py) once '
                  'they have ended')
            return 0
        rows = wait_slurm(jobs, specs, sweep_dir, progress)
    failed = [row for row in rows if row.get('status') != 'done']
    print(f'{len(rows) - len(failed)} of {len(rows)} runs done'
          + (f'; failed: {[row.get("run_id") for row in failed]}'
             if failed else '')
          + '. Tables: python tools/analysis_tools/sweep_report.py '
          + sweep_dir)
    return 1 if failed else 0


def main(argv=None) -> int:
    from moe_seg_plugin.engine import clear_errors
    args = parse_args(argv)
    ok, code = clear_errors(lambda: sweep(args))
    return code if ok else 2


if __name__ == '__main__':
    sys.exit(main())
