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
    python tools/deployment/export.py CONFIG CHECKPOINT --format onnx [--shape H W]
        [--out FILE.onnx] [--capacity-factor F] [--compare-stock]
        [--stock-checkpoint FILE] [--int8 [--calib N]] [--eval]
        [--cfg-options key=value ...]

CHECKPOINT ``none`` exports freshly initialised weights (to try the tool;
``--eval`` needs a checkpoint). Without ``--shape`` the graph takes the
test set's input size with ``--eval`` or ``--int8``, else 512x1024.
Needs the export extra: ``pip install -e ".[export]"``.
"""
import argparse
import os
import os.path as osp
import sys
import warnings
from typing import Dict, Optional, Tuple

from mmengine.config import DictAction

DEFAULT_SHAPE = (512, 1024)


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


def _check_args(args: argparse.Namespace) -> Tuple[Optional[str],
                                                    Optional[str]]:
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


def _export_one(module, path: str, shape, inputs, plans, int8: bool,
                calibration, test_images, threads: Optional[int]) -> dict:
    """Export one model, check it and (with ``int8``) quantize it."""
    from moe_seg_plugin.evaluation.onnx_export import (check_export,
                                                       cpu_session,
                                                       export_onnx)
    from moe_seg_plugin.evaluation.onnx_quantize import quantize_and_check
    export_onnx(module, shape, path)
    fp32 = cpu_session(path, threads)
    result = dict(onnx=path, check=check_export(module, fp32, inputs, plans),
                  sessions=dict(fp32=fp32), int8=None)
    if int8:
        session, result['int8'] = quantize_and_check(path, calibration,
                                                     test_images, threads)
        result['sessions']['int8'] = session
    return result


def export_and_check(args: argparse.Namespace) -> dict:
    """Export CONFIG (and the stock model), check, quantize, evaluate and
    time; the figures."""
    from moe_seg_plugin.engine import load_config
    from moe_seg_plugin.evaluation.onnx_eval import preprocessed_images
    from moe_seg_plugin.evaluation.onnx_export import (TensorMode,
                                                       plan_capacity,
                                                       probe_inputs,
                                                       require_export_extra)
    from moe_seg_plugin.models.stock import stock_config
    require_export_extra()
    checkpoint, stock_checkpoint = _check_args(args)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.cfg_options)
    shape = _graph_shape(args, cfg)
    name = osp.splitext(osp.basename(args.config))[0]
    out = args.out or osp.join('work_dirs', 'export', name + '.onnx')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    calibration = test_images = []
    if args.int8:
        calibration = preprocessed_images(cfg, 'train_dataloader',
                                          args.calib, shape)
        test_images = preprocessed_images(cfg, 'test_dataloader',
                                          args.calib, shape)
    inputs = probe_inputs(shape)
    models = {'MoE': (TensorMode(_load_model(cfg, checkpoint)).eval(), out)}
    if args.compare_stock:
        models['stock'] = (TensorMode(
            _load_model(stock_config(cfg), stock_checkpoint)).eval(),
                           osp.splitext(out)[0] + '_stock.onnx')
    result = dict(config=args.config, shape=list(shape), models={},
                  calib=len(calibration), layers=[])
    for key, (module, path) in models.items():
        plans = plan_capacity(module, args.capacity_factor)
        result['models'][key] = _export_one(module, path, shape, inputs,
                                            plans, args.int8, calibration,
                                            test_images, args.threads)
        if key == 'MoE':
            result['layers'] = [vars(plan) for plan in plans]
    result['latency'] = _time(models, result['models'], inputs[0],
                              args.runs)
    if args.eval:
        result['eval'] = _evaluate(cfg, models, result['models'], shape,
                                   out, stock_checkpoint)
    return result


def _time(models: dict, exported: dict, x, runs: int) -> Dict[str, float]:
    """Median latency (ms) of every graph and the MoE model in eager
    PyTorch, timed in alternating rounds."""
    import torch

    from moe_seg_plugin.evaluation.latency import compare_latency
    calls = {}
    for key, done in exported.items():
        for precision, session in done['sessions'].items():
            feed = {session.get_inputs()[0].name: x.numpy()}
            calls[f'{key} ONNX {precision.upper()}'] = (
                lambda session=session, feed=feed: session.run(None, feed))
    moe = models['MoE'][0]
    calls['MoE PyTorch'] = lambda: moe(x)
    with torch.no_grad():
        times = compare_latency(calls, warmup=1, repeats=runs)
    return {name: stats['median_ms'] for name, stats in times.items()}


def _evaluate(cfg, models: dict, exported: dict, shape,
              out: str, stock_checkpoint: Optional[str]) -> dict:
    """The test set's metrics per graph (PyTorch, ONNX FP32 / INT8), the
    stock model's only with its checkpoint."""
    from moe_seg_plugin.evaluation.onnx_eval import (evaluate_graphs,
                                                     module_graph,
                                                     session_graph,
                                                     test_runner)
    runner = test_runner(cfg, osp.splitext(out)[0] + '_eval')
    graphs = {}
    for key, done in exported.items():
        if key == 'stock' and stock_checkpoint is None:
            continue
        graphs[f'{key} PyTorch'] = module_graph(models[key][0])
        for precision, session in done['sessions'].items():
            graphs[f'{key} ONNX {precision.upper()}'] = session_graph(session)
    return evaluate_graphs(runner, graphs, shape)


def _load_model(cfg, checkpoint):
    """The model of ``cfg`` in eval mode, ``checkpoint`` (if any) loaded
    once it is checked to fit the model."""
    from moe_seg_plugin.evaluation.flops import inference_model
    return inference_model(cfg, checkpoint)


def _layer_line(layer: dict, check: dict) -> str:
    path = layer['path']
    differ = 'yes' if check['routes_differ'].get(path) else 'no'
    if layer['capacity_factor'] is None:
        how = (f"merged kernels, the graph convolves each of the "
               f"{layer['computed']} patch windows once for "
               f"{layer['chosen']} choices")
    else:
        how = (f"capacity factor {layer['capacity_factor']:g}, the graph "
               f"computes {layer['computed']} windows for "
               f"{layer['chosen']} choices")
    dropped = ', '.join(f'{d[path]:.3f}' for d in check['dropped_share'])
    return (f'MoE layer {path}: {how}; routing differs between inputs: '
            f'{differ}; dropped share per input: {dropped}')


def report(result: dict) -> str:
    """The figures as lines."""
    from moe_seg_plugin.evaluation.onnx_quantize import QUANT_SETTINGS
    height, width = result['shape']
    lines = []
    for key, done in result['models'].items():
        check = done['check']
        lines += [
            f"{key}: exported {result['config']} at 1x3x{height}x{width} "
            f"to {done['onnx']}" if key == 'MoE' else
            f"{key}: exported to {done['onnx']}",
            f'{key}: onnxruntime vs PyTorch, max abs diff per input: ' +
            ', '.join(f'{d:.2e}' for d in check['max_abs_diff'])
        ]
        if key == 'MoE':
            lines += [_layer_line(layer, check) for layer in result['layers']]
        int8 = done['int8']
        if int8:
            lines.append(
                f"{key}: INT8 ({QUANT_SETTINGS}; {result['calib']} training "
                f"images) at {int8['onnx']}; against FP32 on "
                f"{int8['test_images']} test images: max abs logit diff "
                f"{int8['max_abs_diff']:.2e}, top class changed at "
                f"{100 * int8['class_changed']:.2f}% of the logit pixels")
            for layer, share in zip(result['layers'] if key == 'MoE' else [],
                                    int8['routing_changed']):
                lines.append(
                    f"{key}: INT8 changes the top-k of {100 * share:.1f}% of "
                    f"the patches of {layer['path']} ({int8['test_images']} "
                    'test images)')
    latency = result['latency']
    lines.append('latency (median, CPU, alternating rounds): ' + ', '.join(
        f'{name} {ms:.1f} ms' for name, ms in latency.items()))
    for precision in ('FP32', 'INT8'):
        moe, stock = (latency.get(f'{key} ONNX {precision}')
                      for key in ('MoE', 'stock'))
        if moe and stock:
            lines.append(f'MoE / stock, onnxruntime {precision}: '
                         f'{moe / stock:.2f}')
    if result.get('eval'):
        lines += ['', '| graph | mIoU | aAcc |', '|---|---|---|']
        lines += [
            f"| {name} | {metrics.get('mIoU', float('nan')):.2f} | "
            f"{metrics.get('aAcc', float('nan')):.2f} |"
            for name, metrics in result['eval'].items()
        ]
        if 'stock' in result['models'] and not any(
                name.startswith('stock') for name in result['eval']):
            lines.append('(stock model: fresh weights, not evaluated; give '
                         '--stock-checkpoint)')
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings('ignore')
    from moe_seg_plugin.engine import clear_errors
    ok, result = clear_errors(lambda: export_and_check(args))
    if not ok:
        return 2
    print(report(result))
    worst = max(max(done['check']['max_abs_diff'])
                for done in result['models'].values())
    if worst > 1e-4:
        print(f'error: onnxruntime differs from PyTorch by {worst:.2e} '
              '(> 1e-4)', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
