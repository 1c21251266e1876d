"""Export a segmentor to ONNX with its MoE routing kept, and check it.

The graph is the tensor-mode forward (normalised image (1, 3, H, W) in,
decode-head logits out) at one input size. PatchConvMoE layers export in
capacity mode: each expert computes a fixed number of windows,
``ceil(f * T * k / N)`` for T patches, and which patches those are is
decided in the graph from the input. Without ``--capacity-factor`` a layer
keeps its own factor, or gets N / k (no choice dropped: the default
dispatch's output, every expert computing every patch's window).

After the export the tool runs the graph in onnxruntime on three inputs
that route differently and compares with eager PyTorch (max abs diff,
whether routing differed, dropped share), and times both; with
``--compare-stock`` it exports the stock model (MoE wrappers removed) too
and times it.

Usage:
    python tools/export.py CONFIG CHECKPOINT --format onnx [--shape H W]
        [--out FILE.onnx] [--capacity-factor F] [--compare-stock]
        [--cfg-options key=value ...]

CHECKPOINT ``none`` exports freshly initialised weights (to try the tool).
Needs the export extra: ``pip install -e ".[export]"``.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

from mmengine.config import DictAction


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export a segmentor (PatchConvMoE layers in capacity '
        'mode, routing kept) to ONNX and check it against PyTorch.')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint',
                        help="checkpoint file, or 'none' for fresh weights")
    parser.add_argument('--format', choices=['onnx'], default='onnx',
                        help='export format (onnx)')
    parser.add_argument(
        '--shape', type=int, nargs='+', default=[512, 1024],
        help='input size: H W, or one size for a square (default 512 1024)')
    parser.add_argument('--out', help='ONNX file (default: '
                        'work_dirs/export/<config name>.onnx)')
    parser.add_argument(
        '--capacity-factor', type=float,
        help='capacity factor of every MoE layer (default: its own, else '
        'N / k: nothing dropped)')
    parser.add_argument('--compare-stock', action='store_true',
                        help='also export and time the stock model')
    parser.add_argument('--runs', type=int, default=5,
                        help='timed runs per latency (median)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of CONFIG, key=value')
    return parser.parse_args(argv)


def _load_model(cfg, checkpoint):
    """The model of ``cfg`` in eval mode, ``checkpoint`` (if any) loaded
    once it is checked to fit the model."""
    from moe_seg_plugin.evaluation.flops import inference_model
    return inference_model(cfg, checkpoint)


def export_and_check(args: argparse.Namespace) -> dict:
    """Export CONFIG (and the stock model) and check; the figures."""
    from moe_seg_plugin.engine import load_config
    from moe_seg_plugin.evaluation.flops import input_hw
    from moe_seg_plugin.evaluation.onnx_export import (TensorMode,
                                                       check_export,
                                                       export_onnx,
                                                       plan_capacity,
                                                       probe_inputs,
                                                       require_export_extra)
    from moe_seg_plugin.models.stock import stock_config
    require_export_extra()
    if args.capacity_factor is not None and not args.capacity_factor > 0:
        raise ValueError(f'--capacity-factor must be > 0, got '
                         f'{args.capacity_factor}')
    if args.runs < 1:
        raise ValueError(f'--runs must be >= 1, got {args.runs}')
    shape = input_hw(args.shape)
    checkpoint = None if args.checkpoint.lower() == 'none' else \
        args.checkpoint
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    cfg = load_config(args.config, args.cfg_options)
    name = osp.splitext(osp.basename(args.config))[0]
    out = args.out or osp.join('work_dirs', 'export', name + '.onnx')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    module = TensorMode(_load_model(cfg, checkpoint)).eval()
    plans = plan_capacity(module, args.capacity_factor)
    export_onnx(module, shape, out)
    inputs = probe_inputs(shape)
    result = dict(config=args.config, onnx=out, shape=list(shape),
                  check=check_export(module, out, inputs, plans, args.runs),
                  layers=[vars(plan) for plan in plans], stock=None)
    if args.compare_stock and plans:
        stock = TensorMode(_load_model(stock_config(cfg), None)).eval()
        stock_out = osp.splitext(out)[0] + '_stock.onnx'
        export_onnx(stock, shape, stock_out)
        result['stock'] = dict(onnx=stock_out,
                               check=check_export(stock, stock_out, inputs,
                                                  [], args.runs))
    return result


def report(result: dict) -> str:
    """The figures as lines."""
    check = result['check']
    height, width = result['shape']
    lines = [
        f"exported {result['config']} at 1x3x{height}x{width} to "
        f"{result['onnx']}",
        'onnxruntime vs PyTorch, max abs diff per input: ' + ', '.join(
            f'{d:.2e}' for d in check['max_abs_diff']),
    ]
    for layer in result['layers']:
        path = layer['path']
        lines.append(
            f"MoE layer {path}: capacity factor {layer['capacity_factor']:g},"
            f" the graph computes {layer['computed']} windows for "
            f"{layer['chosen']} choices; routing differs between inputs: "
            f"{'yes' if check['routes_differ'].get(path) else 'no'}; "
            'dropped share per input: ' + ', '.join(
                f"{d[path]:.3f}" for d in check['dropped_share']))
    lines.append(f"latency (median, CPU): onnxruntime "
                 f"{check['onnx_ms']:.1f} ms, PyTorch eager "
                 f"{check['eager_ms']:.1f} ms")
    stock = result['stock']
    if stock:
        ratio = check['onnx_ms'] / stock['check']['onnx_ms']
        lines.append(f"stock model: onnxruntime "
                     f"{stock['check']['onnx_ms']:.1f} ms (MoE / stock "
                     f"{ratio:.2f}), exported to "
                     f"{stock['onnx']}")
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings('ignore')
    from moe_seg_plugin.engine import clear_errors
    ok, result = clear_errors(lambda: export_and_check(args))
    if not ok:
        return 2
    print(report(result))
    worst = max(result['check']['max_abs_diff'])
    if worst > 1e-4:
        print(f'error: onnxruntime differs from PyTorch by {worst:.2e} '
              '(> 1e-4)', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
