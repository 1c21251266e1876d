"""Routing analysis of a PatchConvMoE checkpoint on the test set.

Runs the config's test set through MMEngine's Runner with the
RoutingStatsHook and writes a report per PatchConvMoE layer: expert usage,
normalised usage entropy, dominant expert, dead experts, importance CV^2,
mean gate entropy and P(expert | class) (JSON), a usage bar chart and a
P(expert | class) heat map (PNG), and a Markdown summary with the test
metrics. Progress: the Runner logs every default_hooks.logger.interval
test iterations.

Usage:
    python tools/analysis_tools/analyze_routing.py CONFIG CHECKPOINT [--work-dir DIR]
        [--out-dir DIR] [--force-expert I] [--cfg-options key=value ...]
        [--launcher {none,pytorch,slurm,mpi}]
"""
import argparse
import json
import os
import os.path as osp
import re
import sys
from typing import Dict, List, Optional

from mmengine.config import DictAction

HOOK = 'RoutingStatsHook'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\nUsage:')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file of a PatchConvMoE model')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='work dir of the test run (default: the config\'s, else '
        './work_dirs/<config name>)')
    parser.add_argument(
        '--out-dir',
        help='where the report goes (default: <work dir>/routing_analysis)')
    parser.add_argument(
        '--force-expert', type=int, default=None, metavar='I',
        help='send every patch of every PatchConvMoE layer to expert I '
        '(fixed-expert evaluation)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher (default: none)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


class RoutingAnalysis:
    """A test run with the RoutingStatsHook, then the report.

    Building it checks the config, data and checkpoint (errors name the
    file or key); :meth:`run` tests and writes the report.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        from mmengine.model import is_model_wrapper

        from moe_seg_plugin.engine import (check_data_roots,
                                           cpu_distributed, runner_from_cfg,
                                           test_config)
        from moe_seg_plugin.models.injection import moe_layers

        self.args = args
        cfg = test_config(args.config, args.checkpoint, args.cfg_options,
                          args.work_dir, args.launcher)
        hooks = [
            hook for hook in (cfg.get('custom_hooks') or [])
            if hook.get('type') != HOOK
        ]
        cfg.custom_hooks = hooks + [dict(type=HOOK, draw_class_maps=False)]
        check_data_roots(cfg, ['test_dataloader'])
        cpu_distributed(cfg, args.launcher)
        self.out_dir = args.out_dir or osp.join(cfg.work_dir,
                                                'routing_analysis')
        self.runner = runner_from_cfg(cfg)
        model = self.runner.model
        model = model.module if is_model_wrapper(model) else model
        self.layers = moe_layers(model)
        if not self.layers:
            raise ValueError(
                f'{args.config}: the model has no PatchConvMoE layer; '
                'analyse a patchmoe_* config')
        if args.force_expert is not None:
            for name, layer in self.layers.items():
                if not 0 <= args.force_expert < layer.num_experts:
                    raise ValueError(
                        f'--force-expert {args.force_expert}: layer {name} '
                        f'has experts 0 to {layer.num_experts - 1}')
                layer.forced_expert = args.force_expert

    def run(self) -> None:
        """Test, then write the report (on the main process)."""
        from mmengine.dist import is_main_process
        metrics = self.runner.test()
        hook = next(h for h in self.runner.hooks if type(h).__name__ == HOOK)
        result = hook.results.get('test')
        if result is None:
            raise RuntimeError('the test run produced no routing statistics')
        if is_main_process():
            metrics = {
                key: float(value) if _is_number(value) else str(value)
                for key, value in (metrics or {}).items()
            }
            files = write_report(self.out_dir, result, metrics,
                                 self.describe())
            print(f'routing report: {len(files)} files in {self.out_dir} '
                  f'(summary: {osp.join(self.out_dir, "summary.md")})',
                  flush=True)

    def describe(self) -> dict:
        """Run settings and layer settings for the report."""
        args = self.args
        return dict(
            config=args.config,
            checkpoint=args.checkpoint,
            forced_expert=args.force_expert,
            images=len(self.runner.test_dataloader.dataset),
            settings={
                name: dict(num_experts=layer.num_experts, top_k=layer.top_k,
                           grid=layer.grid, patch_size=layer.patch_size)
                for name, layer in self.layers.items()
            })


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _file_stem(layer: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', layer)


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
    from moe_seg_plugin.visualization.routing_charts import (class_heat_map,
                                                             save_png,
                                                             usage_chart)
    os.makedirs(out_dir, exist_ok=True)
    classes = result.get('classes') or []
    files = []
    charts = {}
    for name, stats in result['layers'].items():
        stem = _file_stem(name)
        usage_png = f'usage_{stem}.png'
        save_png(usage_chart(stats['usage'], f'{name}: expert usage',
                             stats['importance']),
                 osp.join(out_dir, usage_png))
        charts[name] = dict(usage=usage_png)
        files.append(usage_png)
        if 'expert_given_class' in stats:
            heat_png = f'expert_given_class_{stem}.png'
            save_png(class_heat_map(stats['expert_given_class'], classes,
                                    f'{name}: P(expert | class)',
                                    stats['class_pixels']),
                     osp.join(out_dir, heat_png))
            charts[name]['expert_given_class'] = heat_png
            files.append(heat_png)
    report = dict(run, metrics=metrics, classes=classes,
                  layers=result['layers'], charts=charts)
    with open(osp.join(out_dir, 'routing_stats.json'), 'w') as file:
        json.dump(report, file, indent=1)
    with open(osp.join(out_dir, 'summary.md'), 'w') as file:
        file.write(markdown_summary(report))
    return files + ['routing_stats.json', 'summary.md']


def _number(value: float) -> str:
    return f'{value:.4f}' if isinstance(value, float) else str(value)


def markdown_summary(report: dict) -> str:
    """The report as Markdown: run, test metrics, then per layer the
    statistics, per-expert table, charts and each class's top expert."""
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
        lines += _layer_section(name, stats, report)
    return '\n'.join(lines) + '\n'


def _layer_section(name: str, stats: dict, report: dict) -> List[str]:
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
        lines += [
            '', f'![P(expert | class) of {name}]'
            f'({charts["expert_given_class"]})', '',
            'P(expert | class): share of each class\'s pixel-slots in '
            'patches routed to each expert.', '',
            '| class | pixels | top expert | P(top expert \\| class) |',
            '|---|---|---|---|'
        ]
        for cls, pixels, row in zip(report['classes'],
                                    stats['class_pixels'],
                                    stats['expert_given_class']):
            if not pixels:
                lines.append(f'| {cls} | 0 | - | - |')
                continue
            top = max(range(len(row)), key=row.__getitem__)
            lines.append(f'| {cls} | {pixels} | E{top} | {row[top]:.4f} |')
    return lines


def main(argv: Optional[list] = None) -> int:
    from moe_seg_plugin.engine import run_cli
    args = parse_args(argv)
    return run_cli(lambda: RoutingAnalysis(args), 'run')


if __name__ == '__main__':
    sys.exit(main())
