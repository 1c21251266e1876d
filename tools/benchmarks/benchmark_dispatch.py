"""The PatchConvMoE layer against the limit of k dense layers, and the
functions one training step of it runs.

Harness (the predecessor layer's): N experts, each Conv3x3 + BN + ReLU with
128 channels, input 2x128x126x252, top-k routing over a 3x3 grid, the
2Conv-GAP gate with a round-robin logit offset so that patches spread over
all experts (as a balanced trained gate's would), the switch loss. For each
N it times, in interleaved rounds (every ratio from the same stretch of
machine load; medians after one warm-up):

- dense x k: the replaced module on the whole map, k times (the limit a
  sparse layer approaches: every output pixel computed by k experts);
- new: the layer, forward (eval, no grad) and forward + backward (train);
  with ``--capacity-factor F`` also in capacity mode ("capacity").

``--old CHECKOUT`` also times the layer of another checkout (e.g. a git
worktree of an older commit) in the same rounds, loaded from its
``moe_seg_plugin/moe`` folder under another name. ``--autocast bfloat16``
runs every cell under autocast (the GPU figures' setting).

``--count-functions`` runs one training forward + backward of the layer
(N=8) under a profiler hook and prints how many distinct functions (and
classes) of ``moe_seg_plugin/moe`` it called, and in how many files.

The harness lives in ``moe_seg_plugin/evaluation/dispatch_benchmark.py``.

Usage:
    python tools/benchmarks/benchmark_dispatch.py [--experts 4 8 32]
        [--top-k 2] [--threads 1] [--repeats 5] [--batch 2]
        [--shape 126 252] [--channels 128] [--old PATH]
        [--capacity-factor F] [--autocast bfloat16|float16]
        [--count-functions] [--device cpu|cuda]
"""
import argparse
import os
import sys

os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import torch  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--experts', nargs='+', type=int, default=[4, 8, 32])
    parser.add_argument('--top-k', type=int, default=2)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--shape', nargs=2, type=int, default=[126, 252])
    parser.add_argument('--channels', type=int, default=128)
    parser.add_argument('--old', help='another checkout to time beside '
                        'this one (its moe_seg_plugin/moe)')
    parser.add_argument('--capacity-factor', type=float,
                        help='also time this checkout\'s layer in capacity '
                        'mode with this factor (column "capacity")')
    parser.add_argument('--autocast', choices=('bfloat16', 'float16'),
                        help='run every cell under autocast to this dtype')
    parser.add_argument('--count-functions', action='store_true',
                        help='count the functions of one training step')
    parser.add_argument('--device', default='cpu',
                        help='cpu (default) or cuda[:i]')
    return parser.parse_args(argv)


def cores(args: argparse.Namespace) -> dict:
    """The layers to time: name: (core package, extra settings)."""
    import moe_seg_plugin.moe as new
    from moe_seg_plugin.evaluation.dispatch_benchmark import load_core
    found = {'new': (new, {})}
    if args.capacity_factor is not None:
        found['capacity'] = (new,
                             dict(capacity_factor=args.capacity_factor))
    if args.old:
        found['old'] = (load_core(os.path.abspath(args.old),
                                  'moe_core_old'), {})
    return found


def print_counts(args, layers: dict, module, x) -> None:
    """--count-functions: one line per core."""
    from moe_seg_plugin.evaluation.dispatch_benchmark import count_functions
    for name, (core, _) in layers.items():
        counts = count_functions(core, module, x, args.top_k)
        print(f'{name}: one training forward + backward (N=8, '
              f'k={args.top_k}) calls {counts["functions"]} functions '
              f'of {counts["classes"]} classes in {counts["files"]} '
              'files of moe_seg_plugin/moe')


def print_table(args, layers: dict, module, x) -> None:
    """The timing table, a row as soon as it is measured."""
    from moe_seg_plugin.evaluation import dispatch_benchmark as bench
    print(f'device {args.device}, {args.threads} thread(s), input '
          f'{args.batch}x{args.channels}x{args.shape[0]}x{args.shape[1]}, '
          f'top-{args.top_k}, 3x3 grid, spread routing'
          + (f', {args.autocast} autocast' if args.autocast else '')
          + f'; ratio = layer / {args.top_k} dense layers (median of '
          f'{args.repeats} rounds)')
    print('\n'.join(bench.table_header(list(layers))))
    dtype = getattr(torch, args.autocast) if args.autocast else None
    for row in bench.dispatch_rows(layers, module, x, args.experts,
                                   args.top_k, args.repeats, args.device,
                                   dtype):
        print(bench.table_row(row, list(layers)), flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from moe_seg_plugin.evaluation.dispatch_benchmark import expert_module
    from moe_seg_plugin.evaluation.machine import (describe_machine,
                                                   machine_line)
    layers = cores(args)
    module = expert_module(args.channels).to(args.device)
    x = torch.randn(args.batch, args.channels, *args.shape,
                    device=args.device)
    print(machine_line(describe_machine(args.device)))
    if args.count_functions:
        print_counts(args, layers, module, x)
    else:
        print_table(args, layers, module, x)
    return 0


if __name__ == '__main__':
    sys.exit(main())
