"""Test (and optionally save/show) a segmentor checkpoint with MMEngine's
Runner (MMSeg's tools/test.py CLI).

Usage:
    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR]
        [--show] [--show-dir DIR] [--wait-time S] [--tta]
        [--cfg-options key=value ...] [--launcher {none,pytorch,slurm,mpi}]
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import DictAction


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Test (and eval) a segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='the directory to save the output prediction maps')
    parser.add_argument('--show', action='store_true', help='show results')
    parser.add_argument(
        '--show-dir',
        help='directory (inside the work dir) where painted images are saved')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--tta', action='store_true', help='test-time augmentation')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_runner(args: argparse.Namespace):
    """The Runner for ``args``, with the config checked and adapted."""
    from moe_seg_plugin.engine import (check_data_roots, cpu_distributed,
                                       runner_from_cfg, test_config,
                                       use_tta)

    cfg = test_config(args.config, args.checkpoint, args.cfg_options,
                      args.work_dir, args.launcher)
    if args.show or args.show_dir:
        hooks = cfg.default_hooks
        if 'visualization' not in hooks:
            raise ValueError('--show/--show-dir: the config has no '
                             'default_hooks.visualization (SegVisualizationHook)')
        hooks.visualization.draw = True
        if args.show:
            hooks.visualization.show = True
            hooks.visualization.wait_time = args.wait_time
        if args.show_dir:
            cfg.visualizer.save_dir = cfg.work_dir
            hooks.visualization.interval = 1
            cfg.visualizer.vis_backends = [
                dict(type='LocalVisBackend', save_dir=osp.join(
                    cfg.work_dir, args.show_dir))
            ]
    if args.tta:
        use_tta(cfg)
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    check_data_roots(cfg, ['test_dataloader'])
    cpu_distributed(cfg, args.launcher)
    return runner_from_cfg(cfg)


def main(argv=None) -> int:
    from moe_seg_plugin.engine import run_cli
    args = parse_args(argv)
    return run_cli(lambda: build_runner(args), 'test')


if __name__ == '__main__':
    sys.exit(main())
