"""Parameters, FLOPs and latency of every shipped architecture: the
PatchConvMoE config (paper defaults: 8 experts, top-2, 3x3 grid, 2Conv-GAP
gate, one layer at the decoder's last conv) against its stock baseline.

For each pair: parameters (without auxiliary heads), FLOPs (mmengine's
FlopAnalyzer, 1 multiply-add = 1 FLOP) of the stock model, of the MoE model
as it runs (top-k experts per patch) and with all experts on every patch,
and CPU/GPU latency of the tensor-mode forward (eval, no_grad, batch 1),
both models timed alternately in one process. Prints a Markdown table.

Usage:
    python tools/benchmarks/benchmark_architectures.py [--shape H [W]] [--archs erfnet
        enet ...] [--warmup N] [--repeats N] [--device cpu] [--threads N]
        [--out FILE.md] [--json FILE.json] [--floor | --family NAME
        [--values V ...]]

``--floor`` prints instead each MoE model's latency against its top-k
floor (moe_seg_plugin.evaluation.floor), in eval and as a training step.

``--family NAME`` prints instead each value of an ablation family
(``configs/ablations/families/``, e.g. ``formulation``: module, merged and
low-rank experts) on each architecture's Cityscapes MoE config, with the
stock model, all timed in the same alternating rounds; a value an
architecture cannot have is named with the reason.
"""
import argparse
import gc
import json
import os
import sys
import time
import warnings

#: name: (MoE config, stock baseline), Cityscapes 512x1024.
ARCHITECTURES = {
    'deeplabv3plus_r18': (
        'configs/deeplabv3plus/patchmoe_deeplabv3plus_r18-d8_4xb2-80k_'
        'cityscapes-512x1024.py',
        'configs/deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_'
        'cityscapes-512x1024.py'),
    'pspnet_r18': (
        'configs/pspnet/patchmoe_pspnet_r18-d8_4xb2-80k_cityscapes-512x1024'
        '.py',
        'configs/pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'),
    'lraspp': (
        'configs/lraspp/patchmoe_lraspp_m-v3-d8_4xb4-160k_cityscapes-'
        '512x1024.py',
        'configs/lraspp/lraspp_m-v3-d8_4xb4-160k_cityscapes-512x1024.py'),
    'unet': (
        'configs/unet/patchmoe_unet-s5-d16_fcn_4xb4-160k_cityscapes-512x1024'
        '.py',
        'configs/unet/unet-s5-d16_fcn_4xb4-160k_cityscapes-512x1024.py'),
    'erfnet': (
        'configs/erfnet/patchmoe_erfnet_fcn_4xb4-160k_cityscapes-512x1024.py',
        'configs/erfnet/erfnet_fcn_4xb4-160k_cityscapes-512x1024.py'),
    'enet': ('configs/enet/patchmoe_enet_4xb4-160k_cityscapes-512x1024.py',
             'configs/enet/enet_4xb4-160k_cityscapes-512x1024.py'),
}
TARGET_RATIO = 1.05
#: Batch of the timed training step (--floor): 1, but 2 for DeepLabv3+ and
#: PSPNet, whose image pooling and 1x1 pyramid level normalise one value per
#: channel at batch 1, which batch norm refuses in training.
TRAIN_BATCH = {'deeplabv3plus_r18': 2, 'pspnet_r18': 2}


def parse_args(argv=None) -> argparse.Namespace:
    import torch
    parser = argparse.ArgumentParser(
        description='Parameters, FLOPs and latency of every shipped '
        'architecture, MoE vs stock (Markdown table)')
    parser.add_argument('--archs', nargs='+', choices=list(ARCHITECTURES),
                        default=list(ARCHITECTURES),
                        help='architectures (default: all six)')
    parser.add_argument(
        '--shape', type=int, nargs='+', default=[512, 1024],
        help='input size: H W, or one size for a square (default 512 1024)')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed rounds per pair (default 2)')
    parser.add_argument('--repeats', type=int, default=10,
                        help='timed rounds per pair (default 10)')
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu',
        help='cpu or cuda[:i] (default: cuda if available, else cpu)')
    parser.add_argument('--threads', type=int,
                        help='CPU threads for torch (default: torch\'s)')
    parser.add_argument('--no-latency', action='store_true',
                        help='parameters and FLOPs only')
    parser.add_argument(
        '--floor', action='store_true',
        help='instead: MoE/stock latency against the top-k floor 1 + (k-1)*s '
        '(s: the dense layer\'s share of the stock model\'s time), in eval '
        'and as a training step, routing spread over all experts')
    parser.add_argument(
        '--family',
        help='instead: each value of this ablation family (e.g. '
        'formulation) against the stock model, timed in the same rounds')
    parser.add_argument('--values', nargs='+',
                        help="with --family: these of its values (default "
                        'all)')
    parser.add_argument('--out', help='also write the table to this file')
    parser.add_argument('--json', help='write every figure to this file')
    return parser.parse_args(argv)


def measure_pair(name: str, args: argparse.Namespace, shape) -> dict:
    """Every figure of one architecture's MoE/stock pair."""
    from moe_seg_plugin.engine import load_config
    from moe_seg_plugin.evaluation.flops import (analyze_model,
                                                 compare_complexity,
                                                 inference_model,
                                                 layer_shares)
    from moe_seg_plugin.evaluation.latency import latency_ratio
    moe_path, stock_path = ARCHITECTURES[name]
    models = {
        'moe': inference_model(load_config(moe_path), device=args.device),
        'stock': inference_model(load_config(stock_path), device=args.device)
    }
    figures = {key: analyze_model(model, shape)
               for key, model in models.items()}
    result = dict(
        arch=name, moe_config=moe_path, stock_config=stock_path,
        moe=figures['moe'].to_dict(), stock=figures['stock'].to_dict(),
        increase_pct=compare_complexity(figures['moe'], figures['stock']),
        layer_shares=layer_shares(figures['moe'], figures['stock']))
    if not args.no_latency:
        result['latency'] = time_models(models, args, shape)
        result.update(latency_ratio(result['latency'], 'moe', 'stock'))
    return result


def time_models(models: dict, args: argparse.Namespace, shape) -> dict:
    """Every model's tensor-mode forward on one input, in the same
    alternating rounds (:func:`compare_latency`)."""
    import torch

    from moe_seg_plugin.evaluation.latency import compare_latency
    x = torch.randn(1, 3, *shape, device=args.device)
    runs = {
        key: (lambda model=model: model(x, mode='tensor'))
        for key, model in models.items()
    }
    return compare_latency(runs, args.warmup, args.repeats, args.device)


def measure_floor_pair(name: str, args: argparse.Namespace, shape) -> dict:
    """One architecture's MoE/stock latency against its floor, in eval and
    as a training step (see moe_seg_plugin.evaluation.floor)."""
    import torch

    from moe_seg_plugin.engine import load_config
    from moe_seg_plugin.evaluation.flops import inference_model
    from moe_seg_plugin.evaluation.floor import measure_floor
    moe_path, stock_path = ARCHITECTURES[name]
    torch.manual_seed(0)
    moe = inference_model(load_config(moe_path), device=args.device)
    stock = inference_model(load_config(stock_path), device=args.device)
    batches = (('eval', 1), ('train', TRAIN_BATCH.get(name, 1)))
    return dict(arch=name, train_batch=batches[1][1], **{
        mode: measure_floor(
            moe, stock,
            torch.randn(batch, 3, *shape, device=args.device),
            train=mode == 'train', warmup=args.warmup,
            repeats=args.repeats)
        for mode, batch in batches
    })


def family_arch(name: str) -> str:
    """The ablation families' arch key of an architecture here (the one
    whose Cityscapes MoE config is the same file)."""
    from moe_seg_plugin.sweep.family import arch_config, arch_names
    moe_path = os.path.abspath(ARCHITECTURES[name][0])
    for arch in arch_names():
        if os.path.abspath(arch_config(arch, 'cityscapes')) == moe_path:
            return arch
    raise ValueError(f'{name}: no arch of configs/ablations/families/'
                     f'_archs.py has the config {ARCHITECTURES[name][0]}')


def measure_family(name: str, args: argparse.Namespace, shape) -> dict:
    """Each value of ``args.family`` on one architecture, with the stock
    model: parameters, FLOPs, latency in the same alternating rounds."""
    import torch

    from moe_seg_plugin.evaluation.flops import analyze_model, inference_model
    from moe_seg_plugin.sweep.family import (arch_config, arch_table,
                                             expand, load_family, run_config,
                                             unavailable_reason)
    from moe_seg_plugin.sweep.spec import BASELINE, RunSpec
    family = load_family(args.family)
    arch, table = family_arch(name), arch_table()
    chosen = family.select(args.values)
    skipped = {}
    for value in chosen:
        reason = unavailable_reason(arch, family.values[value], table)
        if reason:
            skipped[value] = reason
    runnable = [value for value in chosen if value not in skipped]
    specs = [RunSpec(family.name, arch, BASELINE, 0,
                     arch_config(arch, 'cityscapes', table))]
    if runnable:
        specs += [spec for spec in expand(family, [arch], [0], 'cityscapes',
                                          runnable) if not spec.baseline]
    models = {}
    for spec in specs:
        torch.manual_seed(0)
        models[spec.value] = inference_model(run_config(spec),
                                             device=args.device)
    figures = {key: analyze_model(model, shape).to_dict()
               for key, model in models.items()}
    result = dict(arch=name, family=family.name, figures=figures,
                  skipped=skipped)
    if not args.no_latency:
        result['latency'] = time_models(models, args, shape)
    return result


def family_table(results: list) -> str:
    """One row per architecture and value (the stock model first)."""
    from moe_seg_plugin.sweep.spec import BASELINE
    header = ('| architecture | value | params (M) | params +% | GFLOPs '
              '(actual) | GFLOPs +% | latency (ms) | latency / stock |')
    rows = [header, '|---|---|' + '---:|' * 6]
    notes = []
    for r in results:
        stock = r['figures'][BASELINE]
        for value, fig in r['figures'].items():
            params = 100 * (fig['params'] / stock['params'] - 1)
            flops = 100 * (fig['flops'] / stock['flops'] - 1)
            lat = r.get('latency', {})
            timing = '- | -' if not lat else (
                f"{lat[value]['median_ms']:.1f} | "
                f"{lat[value]['median_ms'] / lat[BASELINE]['median_ms']:.3f}")
            rows.append(
                f"| {r['arch']} | {value}"
                f" | {fig['params'] / 1e6:.3f} | {params:+.1f} | "
                f"{fig['flops'] / 1e9:.2f} | {flops:+.1f} | {timing} |")
        reasons: dict = {}  # one line per reason
        for value, why in r['skipped'].items():
            reasons.setdefault(why, []).append(value)
        notes += [f"{r['arch']}: {', '.join(values)} not run: {why}"
                  for why, values in reasons.items()]
    return '\n'.join(rows + [''] + notes)


def floor_table(results: list) -> str:
    """One row per architecture: s, floor, MoE/stock and the excess over
    the floor, in eval and as a training step."""
    header = ('| architecture (layer) | s eval | floor eval | MoE/stock eval '
              '| excess eval | s train | floor train | MoE/stock train | '
              'excess train |')
    rows = [header, '|---|' + '---:|' * 8]
    for r in results:
        paths = ', '.join(f'`{path}`' for path in r['eval']['shares'])
        cells = []
        for mode in ('eval', 'train'):
            f = r[mode]
            share = sum(f['shares'].values())
            cells += [f'{share:.3f}', f"{f['floor']:.3f}",
                      f"{f['ratio']:.3f}", f"{f['excess']:+.3f}"]
        rows.append(f"| {r['arch']} ({paths}) | " + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def markdown_table(results: list) -> str:
    """One row per architecture."""
    header = ('| architecture | params stock (M) | params MoE (M) | params +% '
              '| GFLOPs stock | GFLOPs MoE (actual) | GFLOPs MoE (all '
              'experts) | GFLOPs +% (actual / all) | MoE layer share of '
              'stock FLOPs | latency stock (ms) | latency MoE (ms) | ratio '
              'MoE/stock |')
    rows = [header, '|' + '---|' * header.count(' | ') + '---|']
    for r in results:
        moe, stock, inc = r['moe'], r['stock'], r['increase_pct']
        shares = ' + '.join(f"{s['dense_share_pct']:.1f} %"
                            for s in r['layer_shares'])
        if 'latency' in r:
            lat = r['latency']
            timing = (f"{lat['stock']['median_ms']:.1f} "
                      f"(IQR {lat['stock']['iqr_ms']:.1f}) | "
                      f"{lat['moe']['median_ms']:.1f} "
                      f"(IQR {lat['moe']['iqr_ms']:.1f}) | "
                      f"{r['ratio']:.3f}"
                      + (' *' if r['ratio'] > TARGET_RATIO else ''))
        else:
            timing = '- | - | -'
        rows.append(
            f"| {r['arch']} | {stock['params'] / 1e6:.3f} | "
            f"{moe['params'] / 1e6:.3f} | {inc['params_pct']:+.2f} | "
            f"{stock['flops'] / 1e9:.2f} | {moe['flops'] / 1e9:.2f} | "
            f"{moe['all_experts_flops'] / 1e9:.2f} | "
            f"{inc['flops_pct']:+.2f} / {inc['all_experts_flops_pct']:+.2f} "
            f"| {shares} | {timing} |")
    return '\n'.join(rows)


def run(args: argparse.Namespace) -> dict:
    import torch

    from moe_seg_plugin.evaluation.flops import input_hw
    shape = input_hw(args.shape)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.warmup < 0 or args.repeats < 1:
        raise ValueError('--warmup must be >= 0 and --repeats >= 1')
    results = []
    if args.family and args.floor:
        raise ValueError('--family and --floor: choose one')
    if args.values and not args.family:
        raise ValueError('--values needs --family')
    measure = (measure_floor_pair if args.floor else
               measure_family if args.family else measure_pair)
    for name in args.archs:
        start = time.perf_counter()
        results.append(measure(name, args, shape))
        gc.collect()
        print(f'{name}: done in {time.perf_counter() - start:.0f} s',
              file=sys.stderr, flush=True)
    return dict(shape=list(shape), device=str(args.device),
                threads=torch.get_num_threads(), warmup=args.warmup,
                repeats=args.repeats, floor=args.floor, family=args.family,
                results=results)


def report(summary: dict) -> str:
    height, width = summary['shape']
    if summary.get('family'):
        return family_table(summary['results']) + '\n\n' + (
            f"Family {summary['family']!r} on each architecture's "
            f'Cityscapes MoE config, input 1x3x{height}x{width}, fresh '
            'weights (seed 0); params without auxiliary heads; FLOPs: '
            "mmengine's FlopAnalyzer as the layers run; latency: median of "
            f"{summary['repeats']} alternating rounds of all of an "
            f"architecture's models after {summary['warmup']} warm-up, "
            f"tensor-mode forward, eval, no_grad, {summary['device']}, "
            f"{summary['threads']} threads.")
    if summary['floor']:
        return floor_table(summary['results']) + '\n\n' + (
            f'Input 3x{height}x{width}, fresh weights, routing '
            'spread over all experts (round-robin logit offset); s: the '
            "dense layer's median on its input in the stock model over the "
            'stock median, floor = 1 + (k - 1) * s, excess = MoE/stock - '
            f"floor; medians of {summary['repeats']} alternating rounds "
            f"after {summary['warmup']} warm-up in one process; eval: "
            'batch 1, no_grad forward; train: train mode, forward and '
            f"backward of the tensor output's sum; {summary['device']}, "
            f"{summary['threads']} threads; training step at batch 1 "
            '(DeepLabv3+ and PSPNet: 2, their image pooling and 1x1 pyramid '
            'level normalise one value per channel at batch 1, which batch '
            'norm refuses in training).')
    note = (f"Input 1x3x{height}x{width}, batch 1; params without auxiliary "
            "heads; FLOPs: mmengine FlopAnalyzer (1 multiply-add = 1 FLOP); "
            "MoE (actual) = as traced: gate + top-k experts per patch "
            "(on its window), (all experts) = every expert on the whole "
            "map + gate; "
            "MoE layer share = the replaced conv's share of the stock "
            "model's FLOPs; latency: median "
            f"(IQR) of {summary['repeats']} alternating rounds after "
            f"{summary['warmup']} warm-up, tensor-mode forward, eval, "
            f"no_grad, {summary['device']}, {summary['threads']} threads; "
            f"* = ratio above {TARGET_RATIO}.")
    return markdown_table(summary['results']) + '\n\n' + note


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings('ignore')
    from mmengine.logging import MMLogger

    from moe_seg_plugin.engine import clear_errors
    MMLogger.get_current_instance().setLevel('WARNING')
    ok, summary = clear_errors(lambda: run(args))
    if not ok:
        return 2
    text = report(summary)
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
