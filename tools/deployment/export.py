"""Export a segmentor to ONNX with its MoE routing kept, check it, and
optionally quantize it to INT8 and evaluate the graphs on the test set.

The graph is the tensor-mode forward (normalised image (1, 3, H, W) in,
decode-head logits out) at one input size. PatchConvMoE layers with module
experts export in capacity mode: each expert computes a fixed number of
windows, ``ceil(f * T * k / N)`` for T patches, and which patches those
are is decided in the graph from the input. Without ``--capacity-factor``
a layer keeps its own factor, or gets N / k (no choice dropped: the default
dispatch's output, every expert computing every patch's window). Layers
with merged kernels (``expert_scope='conv'``, low-rank too) need no
capacity: the graph mixes each patch's chosen kernels and convolves each
window once.

After the export the tool runs the graph in onnxruntime on three inputs
that route differently and compares with eager PyTorch (max abs diff,
whether routing differed, dropped share). ``--compare-stock`` exports the
stock model (MoE wrappers removed) too. ``--int8`` quantizes each graph
statically (onnxruntime, calibrated on ``--calib`` images of the config's
training set through its test pipeline) and counts the patches whose
top-k changes. ``--eval`` runs the config's test loop and metric
(IoUMetric) with each graph in place of the model: PyTorch, ONNX FP32,
ONNX INT8. The latencies are timed in one process, in alternating rounds.

Usage:
    python tools/deployment/export.py CONFIG CHECKPOINT --format onnx
        [--shape H W] [--out FILE.onnx] [--capacity-factor F] [--compare-stock]
        [--stock-checkpoint FILE] [--int8 [--calib N]] [--eval]
        [--cfg-options key=value ...]

CHECKPOINT ``none`` exports freshly initialised weights (to try the tool;
``--eval`` needs a checkpoint). Without ``--shape`` the graph takes the
test set's input size with ``--eval`` or ``--int8``, else 512x1024.
Needs the export extra: ``pip install -e ".[export]"``.
"""
import argparse
import os.path as osp
import sys
import warnings
from typing import Optional, Tuple

from mmengine.config import DictAction

DEFAULT_SHAPE = (512, 1024)
#: The MoE and stock checkpoints, None for fresh weights.
Checkpoints = Tuple[Optional[str], Optional[str]]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export a segmentor (PatchConvMoE routing kept) to ONNX, '
        'check it against PyTorch, optionally quantize it to INT8 and '
        'evaluate it on the test set.')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint',
                        help="checkpoint file, or 'none' for fresh weights")
    parser.add_argument('--format', choices=['onnx'], default='onnx',
                        help='export format (onnx)')
    parser.add_argument(
        '--shape', type=int, nargs='+',
        help='input size: H W, or one size for a square (default: the test '
        "set's with --eval or --int8, else 512 1024)")
    parser.add_argument('--out', help='ONNX file (default: '
                        'work_dirs/export/<config name>.onnx)')
    parser.add_argument(
        '--capacity-factor', type=float,
        help='capacity factor of every MoE layer (default: its own, else '
        'N / k for module experts: nothing dropped)')
    parser.add_argument('--compare-stock', action='store_true',
                        help='also export (quantize, evaluate) and time the '
                        'stock model')
    parser.add_argument('--stock-checkpoint',
                        help='weights of the stock model (default: fresh '
                        'ones; its mIoU is then left out)')
    parser.add_argument('--int8', action='store_true',
                        help='also quantize each graph to INT8 (static, '
                        'onnxruntime), written beside it as *_int8.onnx')
    parser.add_argument('--calib', type=int, default=32,
                        help='training images to calibrate INT8 on '
                        '(default 32)')
    parser.add_argument('--eval', action='store_true',
                        help="evaluate each graph on the config's test set "
                        'with its test_evaluator (IoUMetric)')
    parser.add_argument('--threads', type=int,
                        help='CPU threads of PyTorch and onnxruntime '
                        "(default: each library's own)")
    parser.add_argument('--runs', type=int, default=5,
                        help='timed rounds per latency (median)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of CONFIG, key=value')
    return parser.parse_args(argv)


def _check_args(args: argparse.Namespace) -> Checkpoints:
    """The checkpoints (None for fresh weights), once the arguments are
    checked; one line naming the argument otherwise."""
    if args.capacity_factor is not None and not args.capacity_factor > 0:
        raise ValueError(f'--capacity-factor must be > 0, got '
                         f'{args.capacity_factor}')
    if args.runs < 1:
        raise ValueError(f'--runs must be >= 1, got {args.runs}')
    if args.threads is not None and args.threads < 1:
        raise ValueError(f'--threads must be >= 1, got {args.threads}')
    if args.int8 and args.calib < 1:
        raise ValueError(f'--calib must be >= 1, got {args.calib}')
    checkpoint = None if args.checkpoint.lower() == 'none' else \
        args.checkpoint
    for name, path in (('checkpoint', checkpoint),
                       ('--stock-checkpoint', args.stock_checkpoint)):
        if path is not None and not osp.isfile(path):
            raise FileNotFoundError(f'{name} {path!r} does not exist')
    if args.eval and checkpoint is None:
        raise ValueError('--eval needs a CHECKPOINT (the mIoU of fresh '
                         "weights says nothing); got 'none'")
    if args.stock_checkpoint and not args.compare_stock:
        raise ValueError('--stock-checkpoint needs --compare-stock')
    return checkpoint, args.stock_checkpoint


def _graph_shape(args: argparse.Namespace, cfg) -> Tuple[int, int]:
    from moe_seg_plugin.evaluation.flops import input_hw
    from moe_seg_plugin.evaluation.onnx_eval import test_input_shape
    if args.shape:
        return input_hw(args.shape)
    if args.eval or args.int8:
        return test_input_shape(cfg)
    return DEFAULT_SHAPE


def export_and_check(args: argparse.Namespace) -> dict:
    """Export CONFIG (and the stock model), check, quantize, evaluate and
    time; the figures (see ``moe_seg_plugin.evaluation.onnx_deploy``)."""
    from moe_seg_plugin.engine import load_config
    from moe_seg_plugin.evaluation.onnx_deploy import Deployment, deploy
    from moe_seg_plugin.evaluation.onnx_export import require_export_extra
    require_export_extra()
    checkpoint, stock_checkpoint = _check_args(args)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.cfg_options)
    name = osp.splitext(osp.basename(args.config))[0]
    job = Deployment(
        config=args.config, shape=_graph_shape(args, cfg),
        out=args.out or osp.join('work_dirs', 'export', name + '.onnx'),
        checkpoint=checkpoint, compare_stock=args.compare_stock,
        stock_checkpoint=stock_checkpoint,
        capacity_factor=args.capacity_factor, int8=args.int8,
        calib=args.calib, evaluate=args.eval, threads=args.threads,
        runs=args.runs)
    return deploy(cfg, job)


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings('ignore')
    from moe_seg_plugin.engine import clear_errors
    from moe_seg_plugin.evaluation.onnx_report import (MAX_ABS_DIFF,
                                                       deployment_report,
                                                       worst_abs_diff)
    ok, result = clear_errors(lambda: export_and_check(args))
    if not ok:
        return 2
    print(deployment_report(result))
    worst = worst_abs_diff(result)
    if worst > MAX_ABS_DIFF:
        print(f'error: onnxruntime differs from PyTorch by {worst:.2e} '
              f'(> {MAX_ABS_DIFF:g})', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
