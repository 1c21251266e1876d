"""Routing statistics of every PatchConvMoE layer, logged while a Runner
trains, validates or tests."""
import logging
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine import dist as mm_dist
from mmengine.dataset import DefaultSampler
from mmengine.hooks import Hook, LoggerHook
from mmengine.logging import print_log
from mmseg.registry import HOOKS
from torch import nn

from ..models.injection import moe_layers, segmentor_of
from ..moe.routing import RoutingRecord
from ..moe.statistics import RoutingCounts
from .routing_labels import image_class_counts, inference_windows
from .routing_stats_file import append_entry, drop_entries_after

#: Summary entries logged as scalars, by their name in the logs.
LOGGED = {
    'usage_entropy': 'usage_entropy',
    'dominant_share': 'dominant_share',
    'dead_experts': 'num_dead',
    'importance_cv2': 'importance_cv2',
    'gate_entropy': 'gate_entropy',
    'dropped_share': 'dropped_share',
}
#: The logging rule (interval, ignore_last) of a run without a LoggerHook:
#: MMSeg's default_runtime logger interval.
NO_LOGGER_RULE = (50, True)


@HOOKS.register_module()
class RoutingStatsHook(Hook):
    """Logs how the PatchConvMoE layers route (routing statistics in
    docs/en/advanced_guides/design.md).

    Every forward pass of every PatchConvMoE layer is counted. In training
    the counts since the last log are summed over ranks and logged at the
    logger interval as ``train/moe/train/<layer>/<name>`` scalars of the
    MessageHub, which the LoggerHook (priority BELOW_NORMAL, after this
    hook) sends to every visualizer backend as ``moe/train/<layer>/<name>``
    (MMEngine drops the leading mode), so training and validation
    statistics keep apart tags. With ``log_processor.log_with_hierarchy``
    MMEngine keeps the mode itself and the keys are ``train/moe/<layer>/
    <name>``. ``<layer>`` is the layer's path in the segmentor, whatever
    wraps it (DDP, test-time augmentation). Names: ``usage_entropy``
    (H(f)/log N), ``dominant_share``, ``dead_experts`` (how many have usage
    below 1/(10N)), ``importance_cv2``, ``gate_entropy`` (mean per-patch
    gate entropy / log N) and ``usage_expert_<i>``; see
    :meth:`RoutingCounts.summary`. A validation or test epoch is counted as
    a whole (summed over ranks, without the samples a distributed sampler
    repeats to even out the ranks) and logged the same way under ``val`` or
    ``test``, with
    P(expert | class) from the ground truth: the share of each class's
    pixel-slots that fall in patches routed to each expert (in the JSON
    file and, after validation, as a heat map sent to the visualizer).

    Every log is also appended to ``<work_dir>/<out_file>``, one JSON object
    a line (like MMEngine's scalars.json): ``mode``, ``iter``, ``run`` (the
    runner's timestamp), ``layers`` (the full summary per layer) and, for
    val/test, ``classes``. A training run starting at iteration i (i > 0
    after ``--resume``; 0 for a fresh run or a ``--resume`` that found no
    checkpoint) first drops the train and val entries of iterations after
    i that an earlier run in the work dir wrote, so no (mode, iter) appears
    twice.

    Slide inference runs a layer once per crop: every crop counts, and a
    label pixel counts for each crop that covers it. When the runs of a
    layer cannot be matched to image windows (e.g. test-time augmentation),
    P(expert | class) is left out with one warning.

    Validation and test share one path (MMEngine's ``_before_epoch``,
    ``_after_iter`` and ``_after_epoch`` with their ``mode``). The grid
    check of MMSeg's own tools is :class:`GridCheckHook`'s.

    Args:
        interval (int, optional): Training iterations between logs.
            Default: the LoggerHook's interval (and its end-of-epoch rule),
            so every logged step has fresh statistics.
        per_expert (bool): Also log each expert's usage share. Default: True.
        class_stats (bool): Compute P(expert | class) at validation and test.
            Default: True.
        draw_class_maps (bool): Send the P(expert | class) heat map of each
            layer to the visualizer after each validation (not after a
            test, whose visualizer may be saving painted predictions;
            tools/analysis_tools/analyze_routing.py draws them). Default: True.
        out_file (str): File name in the work dir. Default:
            'routing_stats.json'.
    """
    priority = 'NORMAL'

    def __init__(self,
                 interval: Optional[int] = None,
                 per_expert: bool = True,
                 class_stats: bool = True,
                 draw_class_maps: bool = True,
                 out_file: str = 'routing_stats.json') -> None:
        if interval is not None and (not isinstance(interval, int)
                                     or interval < 1):
            raise ValueError(f'RoutingStatsHook: interval must be a positive '
                             f'int or None (the LoggerHook\'s), got '
                             f'{interval!r}')
        self.interval = interval
        self.per_expert = per_expert
        self.class_stats = class_stats
        self.draw_class_maps = draw_class_maps
        self.out_file = out_file
        #: The last summary per mode: dict(iter, layers, classes).
        self.results: Dict[str, dict] = {}
        self._layers: Dict[str, nn.Module] = {}
        self._handles: List = []
        self._mode: Optional[str] = None
        self._counts: Dict[str, Dict[str, RoutingCounts]] = {}
        self._pending: Dict[str, List[RoutingRecord]] = {}
        self._input_size: Optional[tuple] = None
        self._classes: List[str] = []
        self._model: Optional[nn.Module] = None
        self._warned: set = set()
        self._seen = 0
        self._real: Optional[int] = None
        self._log_rule: Tuple[int, bool] = NO_LOGGER_RULE

    # Collecting.
    def before_run(self, runner) -> None:
        """Hook every PatchConvMoE layer of the runner's segmentor."""
        if self._handles:
            return
        model = segmentor_of(runner.model)
        self._model = model
        self._layers = dict(sorted(moe_layers(model).items()))
        if not self._layers:
            self._warn('no-layers', 'RoutingStatsHook: the model has no '
                       'PatchConvMoE layer; no routing statistics')
            return
        for name, layer in self._layers.items():
            self._handles.append(
                layer.register_forward_hook(self._collector(name)))
        self._handles.append(
            model.register_forward_pre_hook(self._note_input,
                                            with_kwargs=True))

    def after_run(self, runner) -> None:
        """Remove the layer hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _collector(self, name: str):
        """A forward hook for layer ``name``: counts its routing (train) or
        keeps it for the data samples after the iteration (val, test)."""

        def collect(module, args, output) -> None:
            counts = self._counts.get(self._mode)
            record = module.last_routing
            if counts is None or record is None:
                return
            if self._mode == 'train':
                counts[name].add(record)
            else:
                self._pending.setdefault(name, []).append(record)

        return collect

    def _note_input(self, module, args, kwargs) -> None:
        """Keep the (H, W) of the segmentor's input batch."""
        inputs = kwargs.get('inputs', args[0] if args else None)
        if isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
            self._input_size = tuple(inputs.shape[-2:])

    def _start(self, mode: str, num_classes: int = 0) -> None:
        """Fresh counts for ``mode``."""
        self._mode = mode
        self._pending = {}
        self._counts[mode] = {
            name: RoutingCounts(layer.num_experts, num_classes,
                                _device_of(layer))
            for name, layer in self._layers.items()
        }

    # Every mode, as MMEngine's Hook dispatches them.
    def before_train(self, runner) -> None:
        """Fresh training counts (kept across epochs until logged), the
        LoggerHook's rule, and the stats file continued from
        ``runner.iter``."""
        self._classes = []
        self._start('train')
        self._log_rule = _logger_rule(runner)
        if mm_dist.is_main_process():
            self._continue_file(runner, runner.iter)

    def _before_epoch(self, runner, mode: str = 'train') -> None:
        """Fresh counts at the start of a validation or test epoch."""
        if mode != 'train':
            self._begin_eval(runner, mode)

    def _before_iter(self, runner, batch_idx: int, data_batch=None,
                     mode: str = 'train') -> None:
        """Count the coming forward passes under ``mode``."""
        self._mode = mode

    def _after_iter(self, runner, batch_idx: int, data_batch=None,
                    outputs: Optional[Sequence] = None,
                    mode: str = 'train') -> None:
        """Training: log when the LoggerHook logs. Val/test: count the
        batch's runs with its data samples."""
        if mode != 'train':
            self._count_batch(outputs)
        elif self._layers and self._log_due(runner, batch_idx):
            self._publish(runner, 'train', runner.iter + 1)
            for counts in self._counts['train'].values():
                counts.reset()

    def _after_epoch(self, runner, mode: str = 'train') -> None:
        """Log a validation or test epoch as a whole."""
        if mode != 'train':
            self._end_eval(runner, mode)

    # Training.
    def _continue_file(self, runner, start: int) -> None:
        """Drop the stats file's entries that this run, starting at
        iteration ``start``, logs again."""
        path = osp.join(runner.work_dir, self.out_file)
        dropped = drop_entries_after(path, start)
        if dropped:
            print_log(f'RoutingStatsHook: training starts at iteration '
                      f'{start}; dropped {dropped} entries of {path} '
                      f'written after it', logger='current')

    def _log_due(self, runner, batch_idx: int) -> bool:
        """Whether to log after this training iteration: when the
        LoggerHook logs (``LoggerHook.after_train_iter``: every
        ``interval`` iterations of the epoch, and at the end of an epoch
        unless ``ignore_last`` and the epoch is longer than the interval),
        or every ``self.interval`` iterations by the same rule."""
        interval, ignore_last = self._log_rule
        interval = self.interval or interval
        if self.every_n_inner_iters(batch_idx, interval):
            return True
        loader = runner.train_dataloader
        return self.end_of_epoch(loader, batch_idx) and (
            not ignore_last or len(loader) <= interval)

    # Validation and test.
    def _begin_eval(self, runner, mode: str) -> None:
        """Fresh counts, this rank's real samples and the class names."""
        self._classes = []
        loop = runner.val_loop if mode == 'val' else runner.test_loop
        self._seen, self._real = 0, _real_samples(loop.dataloader)
        if self.class_stats and self._layers:
            metainfo = getattr(loop.dataloader.dataset, 'metainfo', {}) or {}
            self._classes = [str(c) for c in metainfo.get('classes') or ()]
            if not self._classes:
                self._warn('no-classes', 'RoutingStatsHook: the data set '
                           'names no classes; P(expert | class) left out')
        self._start(mode, len(self._classes))

    def _end_eval(self, runner, mode: str) -> None:
        """Log the epoch's counts at the training step."""
        if self._layers:
            self._publish(runner, mode, _train_step(runner), self._classes)
        self._mode = None
        self._pending = {}

    def _count_batch(self, outputs: Optional[Sequence]) -> None:
        """Count the runs of one val/test batch image by image, leaving out
        the samples a distributed sampler repeats to even out the ranks,
        and P(expert | class) from the data samples."""
        pending, self._pending = self._pending, {}
        if not pending:
            return
        counts = self._counts[self._mode]
        batch = len(outputs) if outputs else 0
        images = [
            i for i in range(batch)
            if self._real is None or self._seen + i < self._real
        ]
        self._seen += batch
        with_labels = bool(self._classes) and batch and all(
            'gt_sem_seg' in sample for sample in outputs)
        if self._classes and batch and not with_labels:
            self._warn('no-labels', 'RoutingStatsHook: data samples without '
                       'gt_sem_seg; P(expert | class) left out')
        for name, records in pending.items():
            if any(record.grid[0] != batch for record in records):
                for record in records:  # images unknown: count them all
                    counts[name].add(record)
            else:
                for record in records:
                    for index in images:
                        counts[name].add(record, index)
            if with_labels:
                self._count_classes(name, records, outputs, images)

    def _count_classes(self, name: str, records: List[RoutingRecord],
                       outputs: Sequence, images: List[int]) -> None:
        """Add P(expert | class) counts of one layer's runs on a batch."""
        windows = self._windows(records, len(outputs))
        if windows is None:
            self._warn('windows', f'RoutingStatsHook: {len(records)} '
                       f'runs of layer {name} for one batch of '
                       f'{len(outputs)} images do not match whole or '
                       f'slide inference (test-time augmentation?); '
                       f'P(expert | class) left out for such batches')
            return
        for index in images:
            pixels, slots = image_class_counts(
                records, windows, outputs[index], index, self._input_size,
                len(self._classes))
            self._counts[self._mode][name].add_classes(pixels, slots)

    def _windows(self, records: List[RoutingRecord],
                 batch: int) -> Optional[list]:
        """Which part of the input each run of a layer saw, or None."""
        if self._input_size is None or any(r.grid[0] != batch
                                           for r in records):
            return None
        test_cfg = getattr(self._model, 'test_cfg', None) or {}
        windows = inference_windows(test_cfg, self._input_size)
        return windows if len(windows) == len(records) else None

    # Reporting.
    def _publish(self, runner, mode: str, step: int,
                 classes: Sequence[str] = ()) -> None:
        """Sum over ranks, log the scalars, keep and write the summary."""
        counts = self._counts[mode]
        flats = {name: c.flat().clone() for name, c in counts.items()}
        mm_dist.all_reduce_dict(flats, op='sum')
        for name, flat in flats.items():
            counts[name].load_flat(flat)
        layers = {name: c.summary() for name, c in counts.items()}
        for name, summary in layers.items():
            self._log_scalars(runner, mode, name, summary)
        entry = dict(mode=mode, iter=step, run=runner.timestamp,
                     layers=layers)
        if classes:
            entry['classes'] = list(classes)
        self.results[mode] = entry
        if mm_dist.is_main_process():
            append_entry(osp.join(runner.work_dir, self.out_file), entry)
            if classes and self.draw_class_maps and mode == 'val':
                self._draw(runner, entry, step)

    def _log_scalars(self, runner, mode: str, name: str,
                     summary: dict) -> None:
        """Put one layer's summary into the MessageHub."""
        hierarchy = getattr(runner.log_processor, 'log_with_hierarchy', False)
        prefix = (f'{mode}/moe/{name}/'
                  if hierarchy else f'{mode}/moe/{mode}/{name}/')
        for logged, key in LOGGED.items():
            runner.message_hub.update_scalar(prefix + logged, summary[key])
        if self.per_expert:
            for expert, share in enumerate(summary['usage']):
                runner.message_hub.update_scalar(
                    f'{prefix}usage_expert_{expert}', share)

    def _draw(self, runner, entry: dict, step: int) -> None:
        """Send each layer's P(expert | class) heat map to the
        visualizer."""
        from ..visualization.routing_charts import class_heat_map
        for name, summary in entry['layers'].items():
            image = class_heat_map(
                summary['expert_given_class'], entry['classes'],
                title=f'{name}: P(expert | class), {entry["mode"]}',
                class_pixels=summary['class_pixels'])
            runner.visualizer.add_image(
                f'moe_{name}_expert_given_class', image, step=step)

    def _warn(self, key: str, message: str) -> None:
        """Print ``message`` as a warning once per ``key``."""
        if key not in self._warned:
            self._warned.add(key)
            print_log(message, logger='current', level=logging.WARNING)


def _logger_rule(runner) -> Tuple[int, bool]:
    """The runner's LoggerHook's (interval, ignore_last), or
    :data:`NO_LOGGER_RULE` without one."""
    for hook in runner.hooks:
        if isinstance(hook, LoggerHook):
            return hook.interval, hook.ignore_last
    return NO_LOGGER_RULE


def _real_samples(dataloader) -> Optional[int]:
    """How many of this rank's samples are real when MMEngine's
    DefaultSampler repeats samples to give every rank as many (rank r gets
    positions r, r + W, ... of the padded list; those past the data set's
    length are repeats). None: every sample is real."""
    sampler = getattr(dataloader, 'sampler', None)
    if not isinstance(sampler, DefaultSampler) or not sampler.round_up:
        return None
    return len(range(sampler.rank, len(sampler.dataset), sampler.world_size))


def _device_of(layer: nn.Module) -> Optional[torch.device]:
    """Device of the layer's parameters (None without any)."""
    parameter = next(layer.parameters(), None)
    return parameter.device if parameter is not None else None


def _train_step(runner) -> int:
    """The training iteration (0 without a train loop)."""
    loop = runner._train_loop
    if loop is None or isinstance(loop, dict):
        return 0
    return runner.iter
