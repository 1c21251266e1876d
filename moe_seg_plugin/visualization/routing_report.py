"""The routing report of a test run (``tools/analysis_tools/
analyze_routing.py``): per PatchConvMoE layer a usage chart and a
P(expert | class) heat map (PNG), all statistics and the test metrics in
``routing_stats.json``, and a Markdown summary (``summary.md``)."""
import json
import os
import os.path as osp
import re
from typing import Dict, List

from .routing_charts import class_heat_map, save_png, usage_chart


def report_metrics(metrics: dict) -> Dict[str, object]:
    """Test metrics as JSON takes them: numbers as floats, the rest as
    strings.

    Args:
        metrics (dict): ``runner.test()``'s metrics (None counts as none).

    Returns:
        dict: Name -> float or str.
    """
    return {
        key: float(value) if _is_number(value) else str(value)
        for key, value in (metrics or {}).items()
    }


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def file_stem(name: str) -> str:
    """A layer's dotted path or an architecture's name as a file-name part
    (other characters than letters, digits, ``_``, ``.``, ``-`` become
    ``_``)."""
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', name)


def write_charts(out_dir: str, result: dict) -> Dict[str, Dict[str, str]]:
    """Each layer's usage chart and, with class statistics, its
    P(expert | class) heat map, as PNG files in ``out_dir``.

    Args:
        out_dir (str): Report folder (exists).
        result (dict): ``RoutingStatsHook.results['test']``.

    Returns:
        dict: Layer -> chart kind (``usage``, ``expert_given_class``) ->
        file name within ``out_dir``.
    """
    classes = result.get('classes') or []
    charts = {}
    for name, stats in result['layers'].items():
        stem = file_stem(name)
        usage_png = f'usage_{stem}.png'
        save_png(usage_chart(stats['usage'], f'{name}: expert usage',
                             stats['importance']),
                 osp.join(out_dir, usage_png))
        charts[name] = dict(usage=usage_png)
        if 'expert_given_class' in stats:
            heat_png = f'expert_given_class_{stem}.png'
            save_png(class_heat_map(stats['expert_given_class'], classes,
                                    f'{name}: P(expert | class)',
                                    stats['class_pixels']),
                     osp.join(out_dir, heat_png))
            charts[name]['expert_given_class'] = heat_png
    return charts


def write_report(out_dir: str, result: dict, metrics: Dict[str, float],
                 run: dict) -> List[str]:
    """Write routing_stats.json, the PNGs and summary.md.

    Args:
        out_dir (str): Report folder (created).
        result (dict): ``RoutingStatsHook.results['test']``.
        metrics (dict): Test metrics.
        run (dict): Config, checkpoint, forced expert, images, settings.

    Returns:
        list[str]: The files written.
    """
    os.makedirs(out_dir, exist_ok=True)
    charts = write_charts(out_dir, result)
    report = dict(run, metrics=metrics,
                  classes=result.get('classes') or [],
                  layers=result['layers'], charts=charts)
    with open(osp.join(out_dir, 'routing_stats.json'), 'w') as file:
        json.dump(report, file, indent=1)
    with open(osp.join(out_dir, 'summary.md'), 'w') as file:
        file.write(markdown_summary(report))
    pngs = [png for layer in charts.values() for png in layer.values()]
    return pngs + ['routing_stats.json', 'summary.md']


def _number(value: float) -> str:
    return f'{value:.4f}' if isinstance(value, float) else str(value)


def markdown_summary(report: dict) -> str:
    """The report as Markdown: run, test metrics, then per layer the
    statistics, per-expert table, charts and each class's top expert.

    Args:
        report (dict): What ``routing_stats.json`` holds.

    Returns:
        str: The Markdown text.
    """
    forced = report['forced_expert']
    lines = [
        '# Routing analysis', '',
        f'- config: `{report["config"]}`',
        f'- checkpoint: `{report["checkpoint"]}`',
        f'- test images: {report["images"]}',
        '- routing: ' + (f'every patch forced to expert {forced}'
                         if forced is not None else 'gated'), '',
        '## Test metrics', '', '| metric | value |', '|---|---|'
    ]
    lines += [f'| {k} | {_number(v)} |' for k, v in report['metrics'].items()]
    for name, stats in report['layers'].items():
        lines += layer_section(name, stats, report)
    return '\n'.join(lines) + '\n'


def layer_section(name: str, stats: dict, report: dict) -> List[str]:
    """One layer's Markdown: settings, statistics, per-expert table,
    charts and, with class statistics, each class's top expert.

    Args:
        name (str): The layer's dotted path.
        stats (dict): Its statistics.
        report (dict): The whole report (``settings``, ``charts``,
            ``classes``).

    Returns:
        list[str]: The lines.
    """
    settings = report['settings'].get(name, {})
    n = stats['num_experts']
    dead = ', '.join(f'E{i}' for i in stats['dead_experts']) or 'none'
    split = (f'grid {tuple(settings["grid"])}' if settings.get('grid') else
             f'patch size {settings.get("patch_size")}')
    lines = [
        '', f'## Layer `{name}`', '',
        f'{n} experts, top-{settings.get("top_k", "?")}, {split}; '
        f'{stats["patches"]} patches routed.', '',
        '| statistic | value |', '|---|---|',
        f'| usage entropy H(f)/log N (1 balanced, 0 collapsed) | '
        f'{stats["usage_entropy"]:.4f} |',
        f'| dominant expert (share of top-k slots) | '
        f'E{stats["dominant_expert"]} ({stats["dominant_share"]:.4f}) |',
        f'| dead experts (usage < 1/(10N) = {1 / (10 * n):.4f}) | {dead} |',
        f'| importance CV^2 (gate mass) | {stats["importance_cv2"]:.4f} |',
        f'| mean gate entropy H(P_t)/log N | {stats["gate_entropy"]:.4f} |',
        '', '| expert | usage | gate mass share |', '|---|---|---|'
    ]
    lines += [
        f'| E{i} | {u:.4f} | {m:.4f} |'
        for i, (u, m) in enumerate(zip(stats['usage'], stats['importance']))
    ]
    charts = report['charts'].get(name, {})
    lines += ['', f'![usage of {name}]({charts["usage"]})']
    if 'expert_given_class' in stats:
        lines += class_section(name, stats, report['classes'], charts)
    return lines


def class_section(name: str, stats: dict, classes: List[str],
                  charts: Dict[str, str]) -> List[str]:
    """One layer's P(expert | class) heat map and each class's top
    expert as Markdown.

    Args:
        name (str): The layer's dotted path.
        stats (dict): Its statistics (``class_pixels``, C x N
            ``expert_given_class``).
        classes (list[str]): The C class names.
        charts (dict): The layer's chart files.

    Returns:
        list[str]: The lines.
    """
    lines = [
        '', f'![P(expert | class) of {name}]'
        f'({charts["expert_given_class"]})', '',
        'P(expert | class): share of each class\'s pixel-slots in '
        'patches routed to each expert.', '',
        '| class | pixels | top expert | P(top expert \\| class) |',
        '|---|---|---|---|'
    ]
    for cls, pixels, row in zip(classes, stats['class_pixels'],
                                stats['expert_given_class']):
        if not pixels:
            lines.append(f'| {cls} | 0 | - | - |')
            continue
        top = max(range(len(row)), key=row.__getitem__)
        lines.append(f'| {cls} | {pixels} | E{top} | {row[top]:.4f} |')
    return lines


__all__ = [
    'write_report', 'write_charts', 'markdown_summary', 'layer_section',
    'class_section', 'report_metrics', 'file_stem'
]
