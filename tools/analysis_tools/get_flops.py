"""FLOPs and parameters of a segmentor config, MoE layers counted as they run.

Counts MMEngine's way (FlopAnalyzer: jit trace of one tensor-mode forward of
a random batch-1 input; one multiply-add = 1 FLOP; element-wise ops not
counted), for any config, ours or MMSeg's. For a PatchConvMoE model it prints
what actually runs (gate + top-k experts per patch, halo included, + shared
experts), the figure with every expert on every patch, the stock model's
figures (the config with the MoE wrappers removed, or --baseline) and the
increases in %, and a breakdown per MoE layer. Parameters leave out MMSeg's
auxiliary heads (training only), as MMSeg's get_flops does.

Usage:
    python tools/analysis_tools/get_flops.py CONFIG [--shape H [W]] \
        [--baseline STOCK_CONFIG]
        [--cfg-options key=value ...] [--out FILE.json]
"""
import argparse
import sys
import warnings

import mmengine
from mmengine.config import DictAction


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='FLOPs (mmengine FlopAnalyzer, 1 multiply-add = 1 FLOP, '
        'batch 1, tensor-mode forward) and parameters of a segmentor; for a '
        'MoE config also the all-experts figure, the stock model (MoE '
        'wrappers removed, or --baseline), the increases in % and each MoE '
        'layer\'s breakdown.')
    parser.add_argument('config', help='model config file')
    parser.add_argument(
        '--shape', type=int, nargs='+', default=[512, 1024],
        help='input size: H W, or one size for a square (default 512 1024)')
    parser.add_argument(
        '--baseline',
        help='stock config to compare with (default: CONFIG with its MoE '
        'wrappers removed)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of CONFIG (and of the stock model derived '
        'from it), key=value')
    parser.add_argument('--out', help='write the figures to this JSON file')
    parser.add_argument('--device', default='cpu',
                        help='device to trace on (default cpu)')
    return parser.parse_args(argv)


def analyse(args: argparse.Namespace) -> dict:
    """Every figure the tool prints, as a JSON-ready dict."""
    from moe_seg_plugin.engine import load_config
    from moe_seg_plugin.evaluation.flops import (analyze_model,
                                                 compare_complexity,
                                                 inference_model, input_hw,
                                                 layer_shares)
    from moe_seg_plugin.models.stock import count_moe_wrappers, stock_config

    shape = input_hw(args.shape)
    cfg = load_config(args.config, args.cfg_options)
    model = analyze_model(inference_model(cfg, device=args.device), shape)
    result = dict(config=args.config, shape=list(shape),
                  flops_unit='multiply-adds (mmengine FlopAnalyzer)',
                  model=model.to_dict(), stock=None, stock_source=None,
                  increase_pct=None, layer_shares=None)
    if args.baseline:
        stock_cfg, source = load_config(args.baseline), args.baseline
    elif count_moe_wrappers(cfg.model):
        stock_cfg, source = stock_config(cfg), 'derived from CONFIG'
    else:
        return result
    stock = analyze_model(inference_model(stock_cfg, device=args.device),
                          shape)
    result.update(stock=stock.to_dict(), stock_source=source,
                  increase_pct=compare_complexity(model, stock),
                  layer_shares=layer_shares(model, stock))
    return result


def _g(flops: int) -> str:
    return f'{flops / 1e9:.3f}'


def _m(params: int) -> str:
    return f'{params / 1e6:.3f} M'


def report(result: dict) -> str:
    """The figures as readable tables."""
    from prettytable import PrettyTable
    height, width = result['shape']
    model, stock, inc = result['model'], result['stock'], result[
        'increase_pct']
    lines = [
        f"config: {result['config']}",
        f'input: 1x3x{height}x{width}, tensor-mode forward, eval; FLOPs as '
        'counted by mmengine (1 multiply-add = 1 FLOP, element-wise ops '
        'not counted); params without auxiliary heads'
    ]
    table = PrettyTable(['model', 'GFLOPs', 'params', 'GFLOPs +%',
                         'params +%'])
    table.align['model'] = 'l'
    if stock is not None:
        lines.append(f"stock model: {result['stock_source']}")
        table.add_row(['stock', _g(stock['flops']), _m(stock['params']), '',
                       ''])
    has_moe = bool(model['moe_layers'])
    name = 'MoE, what runs' if has_moe else 'model'
    table.add_row([
        name, _g(model['flops']), _m(model['params']),
        f"{inc['flops_pct']:+.2f}" if inc else '',
        f"{inc['params_pct']:+.2f}" if inc else ''
    ])
    if has_moe:
        table.add_row([
            'MoE, all experts on all patches',
            _g(model['all_experts_flops']), _m(model['params']),
            f"{inc['all_experts_flops_pct']:+.2f}" if inc else '',
            f"{inc['params_pct']:+.2f}" if inc else ''
        ])
    lines.append(table.get_string())
    if has_moe:
        lines.append(layer_report(model['moe_layers'],
                                  result.get('layer_shares')))
    if model['uncounted_ops']:
        lines.append('not counted (no FLOP rule in mmengine): ' + ', '.join(
            f'{op} x{count}'
            for op, count in sorted(model['uncounted_ops'].items())))
    if model['params_total'] != model['params']:
        lines.append(f"(with auxiliary heads: {_m(model['params_total'])}"
                     + (f", stock {_m(stock['params_total'])}"
                        if stock else '') + ')')
    return '\n'.join(lines)


def layer_report(layers: list, shares) -> str:
    """One row per MoE layer: where it is and what each part costs."""
    from prettytable import PrettyTable
    table = PrettyTable([
        'MoE layer', 'replaced', 'experts', 'input', 'grid', 'windows',
        'dense', 'gate', 'routed', 'shared', 'actual', 'all experts',
        'halo', 'actual/dense', 'dense share'
    ])
    table.align['MoE layer'] = 'l'
    shares = {s['path']: s for s in shares or []}
    for layer in layers:
        share = shares.get(layer['path'])
        _, channels, height, width = layer['input_shape']
        count, _, win_h, win_w = layer['window_shape']
        experts = f"{layer['top_k']}/{layer['num_experts']}" + (
            f"+{layer['num_shared_experts']}s"
            if layer['num_shared_experts'] else '')
        table.add_row([
            layer['path'], layer['module'], experts,
            f'{channels}x{height}x{width}',
            'x'.join(map(str, layer['grid'])), f'{count}x{win_h}x{win_w}',
            _g(layer['dense']), _g(layer['gate']), _g(layer['routed']),
            _g(layer['shared']), _g(layer['actual']),
            _g(layer['all_experts']),
            f"{layer['expert_windows'] / layer['dense']:.2f}",
            f"{layer['actual'] / layer['dense']:.2f}",
            f"{share['dense_share_pct']:.1f} %" if share else '-'
        ])
    return ('MoE layers (GFLOPs; experts = top-k/N[+shared]; windows = '
            'patches x window incl. halo; dense = the replaced conv on the '
            'whole input; routed/shared = traced experts; all experts = '
            'gate + every expert as the dense conv; halo = one expert on all '
            "windows / dense; dense share = the replaced conv's share of the "
            "stock model's FLOPs):\n" + table.get_string())


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings('ignore')
    from moe_seg_plugin.engine import clear_errors
    ok, result = clear_errors(lambda: analyse(args))
    if not ok:
        return 2
    print(report(result))
    if args.out:
        mmengine.dump(result, args.out, indent=2)  # makes the folder
        print(f'figures written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
