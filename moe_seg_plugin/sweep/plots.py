"""The plots of a sweep report, per architecture: mIoU per value with
error bars (the stock baseline as a band), usage entropy over training per
value, and P(expert | class) of the best value."""
import os.path as osp
from statistics import mean
from typing import Dict, List, Optional, Sequence, Tuple

from ..visualization.routing_report import file_stem
from .report import (TableRow, finished, is_finite_number, ordered_once,
                     read_routing_stats, rows_of)


def write_plots(sweep_dir: str, out_dir: str, rows: Sequence[dict],
                table: Sequence[TableRow]) -> Dict[str, List[str]]:
    """Draw each architecture's plots (those with data to show).

    Args:
        sweep_dir (str): The sweep directory (routing_stats.json files).
        out_dir (str): Where the PNGs go.
        rows (sequence[dict]): The sweep's rows.
        table (sequence[TableRow]): :func:`summarise`'s rows.

    Returns:
        dict: {arch: [PNG file names written in ``out_dir``]}.
    """
    drawn = {}
    for arch in ordered_once([], [line.arch for line in table]):
        lines = [line for line in table if line.arch == arch]
        stem = file_stem(arch)
        names = []
        if _plot_miou(lines, osp.join(out_dir, f'miou_{stem}.png')):
            names.append(f'miou_{stem}.png')
        curves = usage_entropy_curves(sweep_dir, rows, arch,
                                      [line.value for line in lines])
        if _plot_curves(curves, arch,
                        osp.join(out_dir, f'usage_entropy_{stem}.png')):
            names.append(f'usage_entropy_{stem}.png')
        best = best_value(lines)
        if best and _plot_expert_given_class(
                sweep_dir, rows, arch, best,
                osp.join(out_dir, f'expert_given_class_{stem}.png')):
            names.append(f'expert_given_class_{stem}.png')
        drawn[arch] = names
    return drawn


def best_value(lines: Sequence[TableRow]) -> Optional[str]:
    """The MoE value with the highest mean mIoU (None if none finished)."""
    scored = [line for line in lines
              if not line.baseline and line.miou_mean is not None]
    if not scored:
        return None
    return max(scored, key=lambda line: line.miou_mean).value


def _figure(width: float = 6.4, height: float = 3.6):
    """A matplotlib Figure on an Agg canvas (no global backend) and its
    axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _plot_miou(lines: Sequence[TableRow], path: str) -> bool:
    """mIoU per value with std error bars; the baseline as a band (mean ±
    std). Values inside the seed spread of the baseline are hollow."""
    moe = [line for line in lines
           if not line.baseline and line.miou_mean is not None]
    stock = next((line for line in lines if line.baseline), None)
    if not moe and (stock is None or stock.miou_mean is None):
        return False
    figure, axes = _figure(max(4.0, 1.0 * len(moe) + 2.5))
    if stock is not None and stock.miou_mean is not None:
        spread = stock.miou_std or 0.0
        axes.axhspan(stock.miou_mean - spread, stock.miou_mean + spread,
                     color='grey', alpha=0.25, label='stock ± std')
        axes.axhline(stock.miou_mean, color='grey', linewidth=1)
    for x, line in enumerate(moe):
        hollow = line.diff.inside_spread is not False
        axes.errorbar(x, line.miou_mean, yerr=line.miou_std or 0.0,
                      fmt='o', capsize=4, color='tab:blue',
                      markerfacecolor='white' if hollow else 'tab:blue')
    axes.set_xticks(range(len(moe)), [line.value for line in moe],
                    fontsize=8)
    axes.set_xlim(-0.6, max(len(moe) - 0.4, 0.6))
    axes.set_ylabel('mIoU (%)')
    axes.set_title(f'{lines[0].arch}: mIoU per value, mean ± std over '
                   f'seeds\n(hollow: Δ vs stock inside the seed spread or '
                   f'n/a)', fontsize=9)
    axes.legend(fontsize=7, loc='best')
    figure.tight_layout()
    figure.savefig(path)
    return True


def usage_entropy_curves(sweep_dir: str, rows: Sequence[dict], arch: str,
                         values: Sequence[str]
                         ) -> Dict[str, Dict[int, float]]:
    """Usage entropy over training per value: the train entries of each
    finished run's routing_stats.json (mean over layers), then the mean
    over seeds at each iteration.

    Args:
        sweep_dir (str): The sweep directory.
        rows (sequence[dict]): The sweep's rows.
        arch (str): The architecture.
        values (sequence[str]): Values to draw, in order.

    Returns:
        dict: {value: {iter: mean usage entropy}} (values with data only).
    """
    curves = {}
    for value in values:
        by_iter: Dict[int, List[float]] = {}
        for row in rows_of(rows, arch, value):
            if not finished(row):
                continue
            for it, entropy in _train_entropy(sweep_dir, row).items():
                by_iter.setdefault(it, []).append(entropy)
        if by_iter:
            curves[value] = {it: mean(v) for it, v in sorted(by_iter.items())}
    return curves


def _train_entropy(sweep_dir: str, row: dict) -> Dict[int, float]:
    """{iter: usage entropy averaged over layers} of a run's training."""
    found = {}
    for entry in read_routing_stats(sweep_dir, row):
        if (entry.get('mode') != 'train'
                or not is_finite_number(entry.get('iter'))):
            continue
        numbers = [s.get('usage_entropy') for s in entry['layers'].values()
                   if isinstance(s, dict)]
        numbers = [float(n) for n in numbers if is_finite_number(n)]
        if numbers:
            found[int(entry['iter'])] = mean(numbers)
    return found


def _plot_curves(curves: Dict[str, Dict[int, float]], arch: str,
                 path: str) -> bool:
    """Usage entropy over iterations, one line per value."""
    if not curves:
        return False
    figure, axes = _figure()
    for value, curve in curves.items():
        axes.plot(list(curve), list(curve.values()), marker='.',
                  label=value)
    axes.set_ylim(0, 1.05)
    axes.set_xlabel('iteration')
    axes.set_ylabel('usage entropy H(f)/log N')
    axes.set_title(f'{arch}: usage entropy over training (mean over seeds)',
                   fontsize=9)
    axes.legend(fontsize=7, loc='lower right')
    figure.tight_layout()
    figure.savefig(path)
    return True


def class_routing(sweep_dir: str, rows: Sequence[dict], arch: str,
                  value: str) -> Optional[Tuple[dict, str, dict]]:
    """P(expert | class) of a value: the last val/test entry of the first
    (lowest-seed) finished run that has one, first MoE layer.

    Returns:
        tuple, optional: (row, layer path, entry), or None without data.
    """
    for row in rows_of(rows, arch, value):
        if not finished(row):
            continue
        entries = [
            e for e in read_routing_stats(sweep_dir, row)
            if e.get('mode') in ('val', 'test') and e['layers']
        ]
        if not entries:
            continue
        entry = entries[-1]
        layer = next(iter(entry['layers']))
        if 'expert_given_class' in entry['layers'][layer]:
            return row, layer, entry
    return None


def _plot_expert_given_class(sweep_dir: str, rows: Sequence[dict],
                             arch: str, value: str, path: str) -> bool:
    """The P(expert | class) heat map of ``value`` (routing_charts)."""
    from moe_seg_plugin.visualization.routing_charts import (class_heat_map,
                                                             save_png)
    found = class_routing(sweep_dir, rows, arch, value)
    if found is None:
        return False
    row, layer, entry = found
    stats = entry['layers'][layer]
    matrix = stats['expert_given_class']
    classes = entry.get('classes') or [f'class {i}'
                                       for i in range(len(matrix))]
    title = (f'{arch} / {value} (best mean mIoU): P(expert | class)\n'
             f'{layer}, seed {row["seed"]}, {entry["mode"]} at iter '
             f'{entry.get("iter")}')
    save_png(class_heat_map(matrix, classes, title,
                            stats.get('class_pixels')), path)
    return True
