"""Fixed-expert evaluation of a PatchConvMoE checkpoint: the test set once
with the gate routing, then once per expert i with every patch of the MoE
layer(s) sent to expert i (weight 1); mIoU, aAcc and per-class IoU of each,
side by side.

Prints a Markdown table (one column per setting, gated first) and writes it
to OUT_DIR/fixed_expert.md, the numbers to OUT_DIR/fixed_expert.json.

Usage:
    python tools/analysis_tools/eval_fixed_expert.py CONFIG CHECKPOINT \
        [--experts I ...]
        [--layer PATH ...] [--work-dir DIR] [--out-dir DIR]
        [--log-level LEVEL] [--cfg-options key=value ...]
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\nUsage')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--experts', type=int, nargs='+',
        help='experts to force (default: every expert all chosen layers '
        'have, 0 .. smallest N - 1)')
    parser.add_argument(
        '--layer', nargs='+', metavar='PATH',
        help='dotted path(s) of the PatchConvMoE layer(s) to force '
        '(default: all; the others keep gating)')
    parser.add_argument(
        '--work-dir',
        help='directory of the run\'s logs (default: the config\'s, else '
        './work_dirs/<config name>)')
    parser.add_argument(
        '--out-dir',
        help='where fixed_expert.md and fixed_expert.json go (default: the '
        'work dir)')
    parser.add_argument(
        '--log-level', default='WARNING',
        choices=['DEBUG', 'INFO', 'WARNING', 'ERROR'],
        help='MMEngine log level (INFO shows every run\'s per-class table; '
        'default: %(default)s)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value')
    return parser.parse_args(argv)


def build_runner(args: argparse.Namespace):
    """The test Runner, its evaluator returning per-class IoU."""
    from moe_seg_plugin.engine.run_setup import (check_data_roots,
                                                 runner_from_cfg,
                                                 test_config)
    from moe_seg_plugin.evaluation.fixed_expert import use_per_class_metric

    cfg = test_config(args.config, args.checkpoint, args.cfg_options,
                      args.work_dir)
    cfg.log_level = args.log_level
    use_per_class_metric(cfg)
    check_data_roots(cfg, ['test_dataloader'])
    return runner_from_cfg(cfg)


def evaluate(args: argparse.Namespace) -> str:
    """Build the runner, evaluate, write the files; returns the table."""
    from mmengine.utils import mkdir_or_exist

    from moe_seg_plugin.evaluation.fixed_expert import (
        evaluate_fixed_experts, markdown_table, to_json)

    runner = build_runner(args)
    results = evaluate_fixed_experts(runner, args.layer, args.experts)
    table = markdown_table(results)
    out_dir = args.out_dir or runner.work_dir
    mkdir_or_exist(out_dir)
    with open(osp.join(out_dir, 'fixed_expert.md'), 'w') as f:
        f.write(f'Fixed-expert evaluation of `{args.checkpoint}` '
                f'(`{args.config}`), layers: '
                f"{', '.join(results['layers'])}\n\n{table}\n")
    with open(osp.join(out_dir, 'fixed_expert.json'), 'w') as f:
        f.write(to_json(results, config=args.config,
                        checkpoint=args.checkpoint) + '\n')
    print(table)
    print(f'written: {osp.join(out_dir, "fixed_expert.md")}, '
          f'{osp.join(out_dir, "fixed_expert.json")}')
    return table


def main(argv=None) -> int:
    from moe_seg_plugin.engine.run_setup import clear_errors
    args = parse_args(argv)
    done, _ = clear_errors(lambda: evaluate(args))
    return 0 if done else 2


if __name__ == '__main__':
    sys.exit(main())
