"""Routing analysis of a PatchConvMoE checkpoint on the test set.

Runs the config's test set through MMEngine's Runner with the
RoutingStatsHook and writes a report per PatchConvMoE layer: expert usage,
normalised usage entropy, dominant expert, dead experts, importance CV^2,
mean gate entropy and P(expert | class) (JSON), a usage bar chart and a
P(expert | class) heat map (PNG), and a Markdown summary with the test
metrics. Progress: the Runner logs every default_hooks.logger.interval
test iterations.

Usage:
    python tools/analysis_tools/analyze_routing.py CONFIG CHECKPOINT
        [--work-dir DIR] [--out-dir DIR] [--force-expert I]
        [--cfg-options key=value ...]
        [--launcher {none,pytorch,slurm,mpi}]
"""
import argparse
import os
import os.path as osp
import sys
from typing import Optional

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

        from moe_seg_plugin.visualization.routing_report import (
            report_metrics, write_report)
        metrics = self.runner.test()
        hook = next(h for h in self.runner.hooks if type(h).__name__ == HOOK)
        result = hook.results.get('test')
        if result is None:
            raise RuntimeError('the test run produced no routing statistics')
        if is_main_process():
            files = write_report(self.out_dir, result,
                                 report_metrics(metrics), self.describe())
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


def main(argv: Optional[list] = None) -> int:
    from moe_seg_plugin.engine import run_cli
    args = parse_args(argv)
    return run_cli(lambda: RoutingAnalysis(args), 'run')


if __name__ == '__main__':
    sys.exit(main())
