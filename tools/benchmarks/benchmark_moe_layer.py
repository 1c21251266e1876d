"""Latency of the PatchConvMoE layer alone, against the dense layer it
replaces and against the naive reference (every expert on every patch).

For each shipped architecture the replaced layer is taken from its
Cityscapes PatchMoE config (the real module, its real input size at
``--shape``), and timed three ways, forward (eval, no grad) and forward +
backward (train mode, the input requiring grad as inside a model):

- dense: the replaced module on the whole map (the stock model's cost);
- moe: PatchConvMoE with N experts and top-k routing (the sparse dispatch;
  ``--dispatches views indexed`` times each way of it, see
  ``moe_seg_plugin/moe/dispatch.py``; default: the layer's own choice);
- naive: every expert on every patch window, combined with a dense (T, N)
  weight matrix (``moe_seg_plugin.moe.reference``); its cost does not
  depend on k.

``--scopes module conv lowrank32`` also times the layer with
``expert_scope='conv'`` (experts of the convolution alone, kernels merged
per patch) and with low-rank experts (``lowrank<R>``: ``expert_rank=R``, a
shared convolution to R channels, then merged 1x1 experts), where the
replaced module supports them (one convolution, then pixel-wise layers).

The gate runs as configured (DoubleConvGAPGate, 3x3 grid), but its logits
get a round-robin offset so that patches spread over all experts, as a
well-balanced trained gate's would. All cells of an architecture and mode
are timed in interleaved rounds, so every ratio comes from the same stretch
of machine load; each figure is the median over the rounds after one
warm-up call. A naive cell whose estimated single call exceeds
``--naive-budget`` seconds is skipped (shown as "skipped"), except at the N
of ``--naive-always`` (8: the speed-up target). The measurement lives in
``moe_seg_plugin/evaluation/layer_benchmark.py``, the tables and targets in
``layer_tables.py`` beside it.

Usage:
    python tools/benchmarks/benchmark_moe_layer.py [--archs A ...]
        [--experts N ...] [--top-k K ...] [--repeats R] [--batch B]
        [--shape H W] [--modes forward backward] [--naive-budget S]
        [--naive-always N ...] [--threads T]
        [--dispatches auto views indexed]
        [--scopes module conv lowrank16 lowrank32]
        [--device cpu|cuda] [--out FILE.md|FILE.json]
"""
import argparse
import json
import os
import sys
import time

# Idle OpenMP threads sleep instead of spinning: on a machine shared with
# other jobs a spinning thread can hold the core a descheduled sibling
# needs, and every parallel op then waits for it. Set OMP_WAIT_POLICY to
# override (it must be set before torch loads).
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import torch  # noqa: E402

from moe_seg_plugin.evaluation import layer_benchmark as bench  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description='Benchmark the PatchConvMoE layer alone against the '
        'dense layer and the naive every-expert reference')
    add = parser.add_argument
    add('--archs', nargs='+', default=list(bench.ARCH_CONFIGS),
        help=f'architectures (default: all of {list(bench.ARCH_CONFIGS)})')
    add('--experts', nargs='+', type=int, default=[2, 4, 8, 16, 32],
        help='numbers of experts N (default: 2 4 8 16 32)')
    add('--top-k', nargs='+', type=int, default=[1, 2],
        help='experts per patch k (default: 1 2)')
    add('--modes', nargs='+', default=list(bench.MODES),
        help='forward (eval, no grad) and/or backward (forward+backward in '
        'train mode)')
    add('--repeats', type=int, default=3,
        help='timed rounds after one warm-up call (default: 3)')
    add('--batch', type=int, default=1, help='images per batch (default: 1)')
    add('--shape', nargs=2, type=int, default=[512, 1024],
        metavar=('H', 'W'), help='model input size the layer input is '
        'taken at (default: 512 1024)')
    add('--naive-budget', type=float, default=8.0,
        help='skip naive cells estimated to take longer than this many '
        'seconds per call (default: 8)')
    add('--naive-always', nargs='*', type=int, default=[8],
        help='numbers of experts whose naive cells run whatever the budget '
        '(default: 8, the speed-up target)')
    add('--dispatches', nargs='+', default=['auto'],
        help='dispatch settings of the layer to time, each in the same '
        'rounds (auto, views, indexed; default: auto)')
    add('--scopes', nargs='+', default=['module'],
        help="expert scopes to time, each in the same rounds (module: the "
        "paper's experts; conv: the convolution alone, kernels merged per "
        'patch; lowrank<R>: low-rank experts of rank R, merged; default: '
        'module)')
    add('--threads', type=int, default=os.cpu_count(),
        help='torch threads (default: all cores)')
    add('--device', default='cpu', help='cpu (default) or cuda[:i]')
    add('--out', help='also write the results to this file (.md: the '
        'Markdown tables; .json: all figures)')
    return parser.parse_args(argv)


def sweep_of(args: argparse.Namespace) -> bench.LayerSweep:
    """The sweep the options ask for, checked (ValueError if bad)."""
    if args.threads < 1:
        raise ValueError(f'--threads: must be >= 1, got {args.threads}')
    if args.out and not args.out.endswith(('.md', '.json')):
        raise ValueError(f'--out: give a .md or .json file, got {args.out!r}')
    options = {key: value for key, value in vars(args).items()
               if key not in ('threads', 'out')}
    sweep = bench.LayerSweep(**options)
    sweep.check()
    return sweep


def run(args: argparse.Namespace) -> tuple:
    """Benchmark every requested architecture: (results, meta)."""
    from moe_seg_plugin.evaluation.machine import describe_machine
    sweep = sweep_of(args)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    start = time.perf_counter()
    results = [bench.bench_arch(arch, sweep) for arch in sweep.archs]
    meta = dict(bench.sweep_meta(sweep),
                omp_wait_policy=os.environ.get('OMP_WAIT_POLICY'),
                machine=describe_machine(sweep.device),
                seconds=time.perf_counter() - start)
    return results, meta


def write(path: str, text: str, results: list, meta: dict) -> None:
    """--out: the Markdown (.md) or every figure (.json)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        if path.endswith('.json'):
            json.dump(dict(meta=meta, results=results), f, indent=2)
        else:
            f.write(text + '\n')


def main(argv=None) -> int:
    from moe_seg_plugin.engine.run_setup import clear_errors
    from moe_seg_plugin.evaluation.layer_tables import markdown
    from moe_seg_plugin.evaluation.machine import machine_line
    args = parse_args(argv)
    done, value = clear_errors(lambda: run(args))
    if not done:
        return 2
    results, meta = value
    text = machine_line(meta['machine']) + '\n\n' + markdown(results, meta)
    print(text)
    if args.out:
        write(args.out, text, results, meta)
    return 0


if __name__ == '__main__':
    sys.exit(main())
