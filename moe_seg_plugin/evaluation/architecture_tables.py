"""The Markdown reports of the architecture benchmark
(:mod:`.architecture_benchmark`): the MoE/stock pair table, the floor
table and the ablation family table, each with a note saying how the
figures were taken."""
from typing import List

#: A MoE/stock latency ratio above this is starred.
TARGET_RATIO = 1.05


def family_table(results: List[dict]) -> str:
    """One row per architecture and value (the stock model first), then a
    line per reason some values were not run."""
    from ..sweep.spec import BASELINE
    header = ('| architecture | value | params (M) | params +% | GFLOPs '
              '(actual) | GFLOPs +% | latency (ms) | latency / stock |')
    rows = [header, '|---|---|' + '---:|' * 6]
    notes = []
    for r in results:
        stock = r['figures'][BASELINE]
        for value, fig in r['figures'].items():
            rows.append(_family_row(r, value, fig, stock, BASELINE))
        reasons: dict = {}  # one line per reason
        for value, why in r['skipped'].items():
            reasons.setdefault(why, []).append(value)
        notes += [f"{r['arch']}: {', '.join(values)} not run: {why}"
                  for why, values in reasons.items()]
    return '\n'.join(rows + [''] + notes)


def _family_row(r: dict, value: str, fig: dict, stock: dict,
                baseline: str) -> str:
    """One value's row of :func:`family_table`."""
    params = 100 * (fig['params'] / stock['params'] - 1)
    flops = 100 * (fig['flops'] / stock['flops'] - 1)
    lat = r.get('latency', {})
    timing = '- | -' if not lat else (
        f"{lat[value]['median_ms']:.1f} | "
        f"{lat[value]['median_ms'] / lat[baseline]['median_ms']:.3f}")
    return (f"| {r['arch']} | {value} | {fig['params'] / 1e6:.3f} | "
            f"{params:+.1f} | {fig['flops'] / 1e9:.2f} | {flops:+.1f} | "
            f"{timing} |")


def floor_table(results: List[dict]) -> str:
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


def _pair_timing(r: dict) -> str:
    """The latency cells of a pair row (medians with IQR, the ratio)."""
    if 'latency' not in r:
        return '- | - | -'
    lat = r['latency']
    return (f"{lat['stock']['median_ms']:.1f} "
            f"(IQR {lat['stock']['iqr_ms']:.1f}) | "
            f"{lat['moe']['median_ms']:.1f} "
            f"(IQR {lat['moe']['iqr_ms']:.1f}) | "
            f"{r['ratio']:.3f}" + (' *' if r['ratio'] > TARGET_RATIO else ''))


def markdown_table(results: List[dict]) -> str:
    """One row per architecture's MoE/stock pair."""
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
        rows.append(
            f"| {r['arch']} | {stock['params'] / 1e6:.3f} | "
            f"{moe['params'] / 1e6:.3f} | {inc['params_pct']:+.2f} | "
            f"{stock['flops'] / 1e9:.2f} | {moe['flops'] / 1e9:.2f} | "
            f"{moe['all_experts_flops'] / 1e9:.2f} | "
            f"{inc['flops_pct']:+.2f} / {inc['all_experts_flops_pct']:+.2f} "
            f"| {shares} | {_pair_timing(r)} |")
    return '\n'.join(rows)


def _family_note(summary: dict) -> str:
    height, width = summary['shape']
    return (f"Family {summary['family']!r} on each architecture's "
            f'Cityscapes MoE config, input 1x3x{height}x{width}, fresh '
            'weights (seed 0); params without auxiliary heads; FLOPs: '
            "mmengine's FlopAnalyzer as the layers run; latency: median of "
            f"{summary['repeats']} alternating rounds of all of an "
            f"architecture's models after {summary['warmup']} warm-up, "
            f"tensor-mode forward, eval, no_grad, {summary['device']}, "
            f"{summary['threads']} threads.")


def _floor_note(summary: dict) -> str:
    height, width = summary['shape']
    return (f'Input 3x{height}x{width}, fresh weights, routing '
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


def _pair_note(summary: dict) -> str:
    height, width = summary['shape']
    return (f"Input 1x3x{height}x{width}, batch 1; params without auxiliary "
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


def report(summary: dict) -> str:
    """The table the run asked for (family, floor or pairs) and its note.

    Args:
        summary (dict): ``results`` and the run's ``shape``, ``device``,
            ``threads``, ``warmup``, ``repeats``, ``floor``, ``family``.

    Returns:
        str: Markdown.
    """
    if summary.get('family'):
        table, note = family_table(summary['results']), _family_note
    elif summary['floor']:
        table, note = floor_table(summary['results']), _floor_note
    else:
        table, note = markdown_table(summary['results']), _pair_note
    return table + '\n\n' + note(summary)
