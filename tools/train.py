"""Train a segmentor with MMEngine's Runner (MMSeg's tools/train.py CLI).

Usage:
    python tools/train.py CONFIG [--work-dir DIR] [--resume] [--amp]
        [--cfg-options key=value ...] [--launcher {none,pytorch,slurm,mpi}]
"""
import argparse
import os
import sys

from mmengine.config import DictAction


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training (needs a GPU)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value (e.g. '
        'train_cfg.max_iters=100)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_runner(args: argparse.Namespace):
    """The Runner for ``args``, with the config checked and adapted."""
    from moe_seg_plugin.engine import (check_data_roots, cpu_distributed,
                                       enable_amp, load_config,
                                       resume_seed, runner_from_cfg,
                                       set_work_dir)

    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.work_dir, args.config)
    if args.amp:
        enable_amp(cfg)
    cfg.resume = args.resume or cfg.get('resume', False)
    resume_seed(cfg)
    check_data_roots(cfg, ['train_dataloader', 'val_dataloader'])
    cpu_distributed(cfg, args.launcher)
    return runner_from_cfg(cfg)


def main(argv=None) -> int:
    from moe_seg_plugin.engine import run_cli
    args = parse_args(argv)
    return run_cli(lambda: build_runner(args), 'train')


if __name__ == '__main__':
    sys.exit(main())
