"""Parameters, FLOPs and latency of every shipped architecture: the
PatchConvMoE config (paper defaults: 8 experts, top-2, 3x3 grid, 2Conv-GAP
gate, one layer at the decoder's last conv) against its stock baseline.

For each pair: parameters (without auxiliary heads), FLOPs (mmengine's
FlopAnalyzer, 1 multiply-add = 1 FLOP) of the stock model, of the MoE model
as it runs (top-k experts per patch) and with all experts on every patch,
and CPU/GPU latency of the tensor-mode forward (eval, no_grad, batch 1),
both models timed alternately in one process. Prints a Markdown table.

``--floor`` prints instead each MoE model's latency against its top-k
floor (moe_seg_plugin.evaluation.floor), in eval and as a training step.

``--family NAME`` prints instead each value of an ablation family
(``configs/ablations/families/``, e.g. ``formulation``: module, merged and
low-rank experts) on each architecture's Cityscapes MoE config, with the
stock model, all timed in the same alternating rounds; a value an
architecture cannot have is named with the reason.

The measurements live in ``moe_seg_plugin/evaluation/
architecture_benchmark.py``, the tables in ``architecture_tables.py``.

Usage:
    python tools/benchmarks/benchmark_architectures.py [--shape H [W]]
        [--archs erfnet enet ...] [--warmup N] [--repeats N]
        [--device cpu|cuda] [--threads N] [--no-latency]
        [--out FILE.md] [--json FILE.json]
        [--floor | --family NAME [--values V ...]]
"""
import argparse
import gc
import json
import os
import sys
import time
import warnings

from moe_seg_plugin.evaluation import architecture_benchmark as bench


def parse_args(argv=None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description='Parameters, FLOPs and latency of every shipped '
        'architecture, MoE vs stock (Markdown table)')
    add = parser.add_argument
    add('--archs', nargs='+', choices=list(bench.ARCHITECTURES),
        default=list(bench.ARCHITECTURES),
        help='architectures (default: all six)')
    add('--shape', type=int, nargs='+', default=[512, 1024],
        help='input size: H W, or one size for a square (default 512 1024)')
    add('--warmup', type=int, default=2,
        help='untimed rounds per pair (default 2)')
    add('--repeats', type=int, default=10,
        help='timed rounds per pair (default 10)')
    add('--device', default='cpu', help='cpu (default) or cuda[:i]')
    add('--threads', type=int, help='CPU threads for torch (default: '
        'torch\'s)')
    add('--no-latency', action='store_true',
        help='parameters and FLOPs only')
    add('--floor', action='store_true',
        help='instead: MoE/stock latency against the top-k floor 1 + (k-1)*s '
        '(s: the dense layer\'s share of the stock model\'s time), in eval '
        'and as a training step, routing spread over all experts')
    add('--family', help='instead: each value of this ablation family '
        '(e.g. formulation) against the stock model, timed in the same '
        'rounds')
    add('--values', nargs='+',
        help='with --family: these of its values (default all)')
    add('--out', help='also write the table to this file')
    add('--json', help='write every figure to this file')
    return parser.parse_args(argv)


def measurement(args: argparse.Namespace):
    """What to measure per architecture: f(name, timing, shape)."""
    if args.family and args.floor:
        raise ValueError('--family and --floor: choose one')
    if args.values and not args.family:
        raise ValueError('--values needs --family')
    if args.floor:
        return bench.measure_floor_pair
    if args.family:
        return lambda name, timing, shape: bench.measure_family(
            name, timing, shape, args.family, args.values)
    return bench.measure_pair


def run(args: argparse.Namespace) -> dict:
    """Measure every architecture; the summary with every figure."""
    import torch

    from moe_seg_plugin.evaluation.flops import input_hw
    from moe_seg_plugin.evaluation.machine import describe_machine
    shape = input_hw(args.shape)
    if args.threads:
        torch.set_num_threads(args.threads)
    timing = bench.Timing(args.device, args.warmup, args.repeats,
                          not args.no_latency)
    timing.check()
    measure, results = measurement(args), []
    for name in args.archs:
        start = time.perf_counter()
        results.append(measure(name, timing, shape))
        gc.collect()
        print(f'{name}: done in {time.perf_counter() - start:.0f} s',
              file=sys.stderr, flush=True)
    return dict(shape=list(shape), device=str(args.device),
                threads=torch.get_num_threads(), warmup=args.warmup,
                repeats=args.repeats, floor=args.floor, family=args.family,
                machine=describe_machine(args.device), results=results)


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings('ignore')
    from mmengine.logging import MMLogger

    from moe_seg_plugin.engine import clear_errors
    from moe_seg_plugin.evaluation.architecture_tables import report
    from moe_seg_plugin.evaluation.machine import machine_line
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')  # no line per initialised weight
    try:
        ok, summary = clear_errors(lambda: run(args))
    finally:
        logger.setLevel(level)
    if not ok:
        return 2
    text = machine_line(summary['machine']) + '\n\n' + report(summary)
    print(text)
    for path, content in ((args.out, text),
                          (args.json, json.dumps(summary, indent=2))):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)),
                        exist_ok=True)
            with open(path, 'w') as f:
                f.write(content + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
