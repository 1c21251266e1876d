"""Fixed-expert evaluation: the test set once gated and once per expert with
every patch forced to that expert, mIoU, aAcc and per-class IoU of each.

The Runner is built once; its test loop runs once per setting with the
PatchConvMoE layers' ``forced_expert`` set (None for the gated run). The
numbers are MMSeg's IoUMetric's own; :class:`PerClassIoUMetric` only adds
the per-class IoU that IoUMetric computes but does not return.
"""
import contextlib
import json
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
from mmengine.hooks import Hook
from mmengine.utils import ProgressBar
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS
from torch import nn

from ..models.injection import moe_layers, segmentor_of
from ..moe import PatchConvMoE

CLASS_PREFIX = 'IoU.'
GATED = 'gated'


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """MMSeg's IoUMetric that also returns each class's IoU.

    Takes IoUMetric's arguments. Besides IoUMetric's summary (``aAcc``,
    ``mIoU``, ...), returns ``IoU.<class name>`` per class: the IoU that
    IoUMetric's ``total_area_to_metrics`` gives, in percent rounded to two
    decimals as IoUMetric rounds its summary (NaN for a class that is in
    neither prediction nor ground truth, unless ``nan_to_num`` is set).
    """

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """IoUMetric's metrics plus ``IoU.<class>`` for every class.

        Args:
            results (list): Per image, IoUMetric's (intersection, union,
                predicted area, label area) histograms.

        Returns:
            dict[str, float]: The metrics.
        """
        metrics = super().compute_metrics(results)
        if self.format_only:
            return metrics
        areas = [sum(column) for column in zip(*results)]
        per_class = self.total_area_to_metrics(*areas, ['mIoU'],
                                               self.nan_to_num,
                                               self.beta)['IoU']
        for name, value in zip(self.dataset_meta['classes'], per_class):
            metrics[CLASS_PREFIX + name] = round(float(value) * 100, 2)
        return metrics


def use_per_class_metric(cfg) -> None:
    """Turn the config's IoUMetric test evaluator into PerClassIoUMetric.

    Raises:
        ValueError: If the test evaluator has no IoUMetric.
    """
    evaluator = cfg.get('test_evaluator')
    metrics = evaluator if isinstance(evaluator, (list, tuple)) else [
        evaluator
    ]
    found = False
    for metric in metrics:
        if isinstance(metric, dict) and metric.get('type') in (
                'IoUMetric', 'mmseg.IoUMetric', IoUMetric):
            metric['type'] = 'PerClassIoUMetric'
            metric['_scope_'] = 'mmseg'
            found = True
    if not found:
        raise ValueError(
            'test_evaluator: fixed-expert evaluation reads per-class IoU from '
            f"MMSeg's IoUMetric; the config's test_evaluator is {evaluator!r}"
            " (set --cfg-options test_evaluator.type=IoUMetric)")


def select_layers(model: nn.Module,
                  paths: Optional[Sequence[str]] = None
                  ) -> Dict[str, PatchConvMoE]:
    """The PatchConvMoE layers to force, by dotted path.

    Args:
        model (nn.Module): The segmentor (a model wrapper is unwrapped).
        paths (list[str], optional): Layers to force; all if None.

    Returns:
        dict[str, PatchConvMoE]: The chosen layers.

    Raises:
        ValueError: If the model has no PatchConvMoE layer, or a path is not
            one (the message lists the layers).
    """
    model = segmentor_of(model)
    layers = moe_layers(model)
    if not layers:
        raise ValueError(
            f'the model ({type(model).__name__}) has no PatchConvMoE layer; '
            'use a MoE config (PatchMoEHead or PatchMoESegmentor, e.g. '
            'configs/<arch>/patchmoe_*.py)')
    if not paths:
        return layers
    unknown = [path for path in paths if path not in layers]
    if unknown:
        raise ValueError(f'--layer: {unknown} is not a PatchConvMoE layer of '
                         f'the model; its MoE layers: {sorted(layers)}')
    return {path: layers[path] for path in paths}


def expert_indices(layers: Dict[str, PatchConvMoE],
                   experts: Optional[Sequence[int]] = None) -> List[int]:
    """The experts to force, checked against every chosen layer.

    Args:
        layers (dict[str, PatchConvMoE]): The chosen layers.
        experts (list[int], optional): Expert indices; default: every index
            all chosen layers have (0 .. smallest N - 1).

    Returns:
        list[int]: The indices, in the given order.

    Raises:
        ValueError: If an index is outside a chosen layer's experts.
    """
    sizes = {path: layer.num_experts for path, layer in layers.items()}
    if experts is None:
        return list(range(min(sizes.values())))
    for index in experts:
        for path, size in sizes.items():
            if not 0 <= index < size:
                raise ValueError(
                    f'--experts: expert {index} does not exist in layer '
                    f'{path!r} ({size} experts: 0 to {size - 1}); experts '
                    f'per layer: {sizes} (use --layer to choose layers)')
    return list(experts)


@contextlib.contextmanager
def forced(layers: Dict[str, PatchConvMoE],
           expert: Optional[int]) -> Iterator[None]:
    """Force every patch of ``layers`` to ``expert`` (None: gated) inside
    the block; the previous setting is restored afterwards, also on error."""
    before = {path: layer.forced_expert for path, layer in layers.items()}
    try:
        for layer in layers.values():
            layer.forced_expert = expert
        yield
    finally:
        for path, layer in layers.items():
            layer.forced_expert = before[path]


class _TestProgress(Hook):
    """MMEngine's progress bar over the test batches of all runs."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar: Optional[ProgressBar] = None

    def after_test_iter(self, runner, batch_idx: int, data_batch=None,
                        outputs=None) -> None:
        if self.bar is None:
            self.bar = ProgressBar(self.total)
        self.bar.update()


def evaluate_fixed_experts(runner,
                           layer_paths: Optional[Sequence[str]] = None,
                           experts: Optional[Sequence[int]] = None,
                           progress: bool = True) -> dict:
    """Run the test loop gated, then with every patch forced to each
    expert.

    Args:
        runner (Runner): A test runner whose evaluator is
            :class:`PerClassIoUMetric` (see :func:`use_per_class_metric`)
            and whose ``load_from`` is the checkpoint.
        layer_paths (list[str], optional): Layers to force (default all).
        experts (list[int], optional): Experts to force (default all that
            every chosen layer has).
        progress (bool): Show a progress bar over all test batches.

    Returns:
        dict: ``layers`` ({path: {num_experts, top_k}}), ``classes`` and
        ``rows``: per setting ``setting`` ('gated' or 'expert i'),
        ``forced_expert``, ``mIoU``, ``aAcc`` and ``IoU`` ({class: IoU});
        all in percent.
    """
    layers = select_layers(runner.model, layer_paths)
    settings = [None] + expert_indices(layers, experts)
    loop = runner.test_loop
    if progress:
        runner.register_hook(
            _TestProgress(len(settings) * len(loop.dataloader)), 'LOWEST')
    runner.call_hook('before_run')
    runner.load_or_resume()
    rows = []
    try:
        for expert in settings:
            with forced(layers, expert):
                metrics = loop.run()
            rows.append(_row(expert, metrics))
    finally:
        runner.call_hook('after_run')
    if progress:
        print(flush=True)
    return dict(
        layers={
            path: dict(num_experts=layer.num_experts, top_k=layer.top_k)
            for path, layer in layers.items()
        },
        classes=list(rows[0]['IoU']),
        rows=rows)


def _row(expert: Optional[int], metrics: Dict[str, float]) -> dict:
    if 'mIoU' not in metrics:
        raise RuntimeError(f'the test evaluator returned no mIoU (got '
                           f'{sorted(metrics)}); is format_only set?')
    per_class = {
        key[len(CLASS_PREFIX):]: value
        for key, value in metrics.items() if key.startswith(CLASS_PREFIX)
    }
    return dict(
        setting=GATED if expert is None else f'expert {expert}',
        forced_expert=expert,
        mIoU=round(float(metrics['mIoU']), 2),
        aAcc=round(float(metrics['aAcc']), 2),
        IoU=per_class)


def _cell(value: float) -> str:
    return '-' if value is None or np.isnan(value) else f'{value:.2f}'


def markdown_table(results: dict) -> str:
    """The results as a Markdown table: one column per setting (gated
    first), rows mIoU, aAcc and each class's IoU (%); '-' marks a class
    absent from prediction and ground truth."""
    rows = results['rows']
    lines = [
        '| metric (%) | ' + ' | '.join(row['setting'] for row in rows) + ' |',
        '|---|' + '---:|' * len(rows)
    ]
    for key in ('mIoU', 'aAcc'):
        lines.append(f'| {key} | ' +
                     ' | '.join(_cell(row[key]) for row in rows) + ' |')
    for name in results['classes']:
        lines.append(f'| IoU {name} | ' +
                     ' | '.join(_cell(row['IoU'][name]) for row in rows) +
                     ' |')
    return '\n'.join(lines)


def to_json(results: dict, **extra) -> str:
    """The results (and ``extra`` fields) as JSON; NaN becomes null."""

    def clean(value):
        if isinstance(value, float) and np.isnan(value):
            return None
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, list):
            return [clean(item) for item in value]
        return value

    return json.dumps(clean(dict(extra, **results)), indent=2)
