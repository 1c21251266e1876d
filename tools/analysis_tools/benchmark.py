"""Inference latency of a segmentor, optionally against its stock model.

What is timed: the network's forward in tensor mode (``model(x,
mode='tensor')``), eval mode, under ``torch.no_grad()``, batch 1, on a random
normalised input of --shape; data pre-processing and the resize/argmax of
``predict`` are left out (they are the same for both models). Warm-up rounds
first, then --repeats timed rounds; with a baseline, each round times both
models once, in alternating order, in the same process, and the ratio of the
medians is printed (on CUDA the clock waits for the GPU). Which experts run
depends on the gate: without a checkpoint the weights are fresh, and a fresh
gate tends to send every patch to the same k experts, which then run on
every window; give a trained checkpoint to time a trained model's routing.
The timing lives in ``moe_seg_plugin/evaluation/model_latency.py``.

Usage:
    python tools/analysis_tools/benchmark.py CONFIG [CHECKPOINT]
        [--baseline STOCK_CONFIG [--baseline-checkpoint FILE] | --vs-stock]
        [--shape H [W]]
        [--warmup N] [--repeats N] [--device cpu|cuda] [--threads N]
        [--cfg-options key=value ...] [--out FILE.json]
"""
import argparse
import sys
import warnings

import mmengine
from mmengine.config import DictAction


def parse_args(argv=None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description='Inference latency of a segmentor: tensor-mode forward, '
        'eval, torch.no_grad, batch 1, random input; warm-up, then median '
        'and spread. With --baseline/--vs-stock both models are timed in '
        'alternating order in one process and the ratio of the medians is '
        'printed.')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', nargs='?',
                        help='checkpoint to load (default: fresh weights)')
    baseline = parser.add_mutually_exclusive_group()
    baseline.add_argument('--baseline',
                          help='stock config timed alongside CONFIG')
    baseline.add_argument(
        '--vs-stock', action='store_true',
        help='time the stock model derived from CONFIG (MoE wrappers '
        'removed) alongside it')
    parser.add_argument('--baseline-checkpoint',
                        help='checkpoint of the baseline (default: fresh '
                        'weights)')
    parser.add_argument(
        '--shape', type=int, nargs='+', default=[512, 1024],
        help='input size: H W, or one size for a square (default 512 1024)')
    parser.add_argument('--warmup', type=int, default=5,
                        help='untimed rounds first (default 5)')
    parser.add_argument('--repeats', type=int, default=20,
                        help='timed rounds (default 20)')
    parser.add_argument('--device', default='cpu',
                        help='cpu (default) or cuda[:i]')
    parser.add_argument('--threads', type=int,
                        help='CPU threads for torch (default: torch\'s)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of CONFIG (and of the stock model derived '
        'from it), key=value')
    parser.add_argument('--out', help='write the timings to this JSON file')
    return parser.parse_args(argv)


def benchmark(args: argparse.Namespace) -> dict:
    """Time the models; every figure as a JSON-ready dict."""
    import torch

    from moe_seg_plugin.evaluation.flops import input_hw
    from moe_seg_plugin.evaluation.machine import describe_machine
    from moe_seg_plugin.evaluation.model_latency import (config_latency,
                                                         model_configs)
    shape = input_hw(args.shape)
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = model_configs(args.config, args.checkpoint, args.baseline,
                            args.baseline_checkpoint, args.vs_stock,
                            args.cfg_options)
    result = dict(
        config=args.config, checkpoint=args.checkpoint,
        baseline=args.baseline or ('derived from CONFIG'
                                   if args.vs_stock else None))
    result.update(config_latency(configs, shape, args.warmup, args.repeats,
                                 args.device))
    result['machine'] = describe_machine(args.device)
    return result


def report(result: dict) -> str:
    """The machine, how the models were timed, a table of their timings
    and the ratio."""
    from prettytable import PrettyTable

    from moe_seg_plugin.evaluation.machine import machine_line
    height, width = result['shape']
    table = PrettyTable(['model', 'median ms', 'min ms', 'max ms', 'IQR ms'])
    table.align['model'] = 'l'
    names = {'model': result['config'], 'stock': result['baseline']}
    for key, stats in result['latency'].items():
        label = 'stock: ' + names[key] if key == 'stock' else names[key]
        table.add_row([label] + [
            f'{stats[k]:.2f}'
            for k in ('median_ms', 'min_ms', 'max_ms', 'iqr_ms')
        ])
    lines = [
        machine_line(result['machine']),
        f"latency: {result['timed']}, input 1x3x{height}x{width}, "
        f"{result['device']} ({result['threads']} threads), "
        f"{result['warmup']} warm-up + {result['repeats']} timed rounds"
        + (', models alternating' if 'ratio' in result else ''),
        table.get_string()
    ]
    if 'ratio' in result:
        lines.append(f"ratio model/stock (medians): {result['ratio']:.3f}  "
                     f"(median of per-round ratios: "
                     f"{result['paired_ratio']:.3f})")
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings('ignore')
    from moe_seg_plugin.engine import clear_errors
    ok, result = clear_errors(lambda: benchmark(args))
    if not ok:
        return 2
    print(report(result))
    if args.out:
        mmengine.dump(result, args.out, indent=2)  # makes the folder
        print(f'timings written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
