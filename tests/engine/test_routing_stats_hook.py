"""RoutingStatsHook: its numbers against statistics computed by hand from
the routing records it saw, in a real Runner (train + val), with slide
inference, and with the counts summed over (simulated) ranks."""
import dataclasses
import json
import math
import pathlib
import time
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from torch import nn

from moe_seg_plugin.datasets import write_cityscapes
from moe_seg_plugin.engine import RoutingStatsHook, load_config
from moe_seg_plugin.moe import PatchConvMoE
from moe_seg_plugin.models.injection import moe_layers

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'configs/erfnet/'
             'patchmoe_erfnet_fcn_1xb4-1k_street-cityscapes-256x256.py')
LAYER = 'decode_head.convs.0'
CLASSES = 19


def _copy(record):
    """A detached copy of a routing record."""
    return dataclasses.replace(
        record, logits=record.logits.detach().clone(),
        probs=record.probs.detach().clone(),
        experts=record.experts.clone(), weights=record.weights.detach())


def _expected(records) -> dict:
    """The statistics, computed directly from the records."""
    experts = torch.cat([r.experts for r in records]).flatten()
    n = records[0].num_experts
    usage = torch.bincount(experts, minlength=n).double() / experts.numel()
    probs = torch.cat([r.probs for r in records]).double()
    mass = probs.sum(0)
    per_patch = -(probs * probs.clamp_min(1e-300).log()).sum(1).mean()
    return dict(
        usage=usage.tolist(),
        usage_entropy=-sum(f * math.log(f)
                           for f in usage.tolist() if f) / math.log(n),
        dominant_share=usage.max().item(),
        dead_experts=int((usage < 1 / (10 * n)).sum()),
        importance_cv2=(mass.var(unbiased=False) / mass.mean()**2).item(),
        gate_entropy=per_patch.item() / math.log(n),
        patches=probs.shape[0])


def _class_slots(record, image, label, scale, offset=(0, 0)):
    """Pixel-slots per class and expert of one image, by walking the cells
    (the label at input size, the layer's output ``scale`` times smaller,
    covering the input from ``offset``)."""
    _, rows, cols = record.grid
    slots = torch.zeros(CLASSES, record.num_experts, dtype=torch.float64)
    for i in range(rows):
        for j in range(cols):
            top = offset[0] + scale * record.row_starts[i]
            left = offset[1] + scale * record.col_starts[j]
            box = label[top:top + scale * record.row_sizes[i],
                        left:left + scale * record.col_sizes[j]]
            box = box[box < CLASSES]
            counts = torch.bincount(box, minlength=CLASSES).double()
            for expert in record.experts[image * rows * cols + i * cols + j]:
                slots[:, expert] += counts
    return slots


def _diversify_gate(layer: PatchConvMoE) -> None:
    """Route on random logits: neighbouring cells go to different experts,
    so a wrong mapping of label pixels to cells shows (a fresh model's gate
    sends all patches of these small scenes to the same experts)."""
    route = layer.route
    layer.route = lambda logits: route(torch.randn_like(logits) * 3)


def _varied(records) -> bool:
    return len({tuple(row) for r in records
                for row in r.experts.tolist()}) >= 3


def _check(summary: dict, expected: dict) -> None:
    for key in ('usage_entropy', 'dominant_share', 'importance_cv2',
                'gate_entropy'):
        assert summary[key] == pytest.approx(expected[key], rel=1e-5,
                                             abs=1e-9), key
    assert summary['usage'] == pytest.approx(expected['usage'])
    assert summary['num_dead'] == expected['dead_experts']
    assert summary['patches'] == expected['patches']


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Two training iterations and one validation of the ERFNet street
    config on generated scenes, with every routing record captured."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    data = tmp_path_factory.mktemp('street')
    write_cityscapes(str(data), num_train=2, num_val=2, height=64, width=128,
                     seed=5)
    options = {
        f'{loader}.dataset.data_root': str(data)
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader')
    }
    options.update({
        'train_dataloader.batch_size': 1,
        'train_dataloader.num_workers': 0,
        'val_dataloader.num_workers': 0,
        'train_dataloader.dataset.pipeline.2.scale': (128, 64),
        'train_dataloader.dataset.pipeline.3.crop_size': (64, 64),
        'val_dataloader.dataset.pipeline.1.scale': (128, 64),
        'model.data_preprocessor.size': (64, 64),
        'train_cfg.max_iters': 2,
        'train_cfg.val_interval': 2,
        'default_hooks.checkpoint.interval': 1000,
        'default_hooks.checkpoint.save_last': False,
        'default_hooks.logger.interval': 1,
        'log_level': 'WARNING',
    })
    cfg = load_config(CONFIG, options)
    assert [h['type'] for h in cfg.custom_hooks] == [
        'RoutingStatsHook', 'GridCheckHook', 'RandomStateHook',
        'CheckpointFitHook']
    cfg.work_dir = str(tmp_path_factory.mktemp('work'))
    # A fresh visualizer: MMEngine hands out an existing instance of the
    # same name (with its old save dir) if an earlier test made one.
    cfg.visualizer.name = f'routing_stats_test_{time.time_ns()}'
    runner = Runner.from_cfg(cfg)
    layer = moe_layers(runner.model)[LAYER]
    captured = dict(train=[], val=[], samples=[])
    layer.register_forward_hook(lambda m, a, o: captured[
        'train' if m.training else 'val'].append(_copy(m.last_routing)))

    class KeepSamples(Hook):

        def before_val_epoch(self, runner):
            _diversify_gate(layer)  # after the Runner's init_weights

        def after_val_iter(self, runner, batch_idx, data_batch=None,
                           outputs=None):
            captured['samples'].extend(outputs)

    runner.register_hook(KeepSamples(), 'LOW')
    runner.train()
    return runner, captured


def test_training_scalars_equal_statistics_of_the_records(trained):
    runner, captured = trained
    assert len(captured['train']) == 2  # one forward per iteration
    hub = runner.message_hub
    for name, key in (('usage_entropy', 'usage_entropy'),
                      ('dominant_share', 'dominant_share'),
                      ('importance_cv2', 'importance_cv2'),
                      ('gate_entropy', 'gate_entropy'),
                      ('dead_experts', 'dead_experts')):
        logged = hub.get_scalar(f'train/moe/train/{LAYER}/{name}').data[0]
        # Logged after each iteration (logger interval 1): each value is
        # that iteration's forward alone.
        assert logged.tolist() == pytest.approx(
            [_expected([r])[key] for r in captured['train']],
            rel=1e-5), name
    usage = [
        hub.get_scalar(f'train/moe/train/{LAYER}/usage_expert_{i}').current()
        for i in range(8)
    ]
    assert usage == pytest.approx(_expected(captured['train'][-1:])['usage'])


def test_logger_hook_writes_them_to_the_visualizer_backend(trained):
    runner, captured = trained
    lines = pathlib.Path(runner.log_dir, 'vis_data', 'scalars.json')
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    train = [r for r in records if 'loss' in r]
    assert [r['step'] for r in train] == [1, 2]
    assert [r[f'moe/train/{LAYER}/usage_entropy'] for r in train] == \
        pytest.approx(
            [_expected([r])['usage_entropy'] for r in captured['train']])
    val = [r for r in records if 'mIoU' in r]
    # Apart tags for training and validation (MMEngine drops the mode).
    assert not any(key.startswith('moe/train/') for key in val[0])
    assert val[0][f'moe/val/{LAYER}/usage_entropy'] == pytest.approx(
        _expected(captured['val'])['usage_entropy'])
    images = pathlib.Path(runner.log_dir, 'vis_data', 'vis_image')
    assert (images / f'moe_{LAYER}_expert_given_class_2.png').is_file()


def test_validation_statistics_and_expert_given_class(trained):
    runner, captured = trained
    records, samples = captured['val'], captured['samples']
    assert len(records) == len(samples) == 2  # batch size 1
    assert _varied(records)
    path = pathlib.Path(runner.work_dir, 'routing_stats.json')
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e['mode'], e['iter']) for e in entries] == [
        ('train', 1), ('train', 2), ('val', 2)]
    val = entries[-1]
    assert len(val['classes']) == CLASSES and val['classes'][0] == 'road'
    summary = val['layers'][LAYER]
    _check(summary, _expected(records))
    assert runner.message_hub.get_scalar(
        f'val/moe/val/{LAYER}/usage_entropy').current() == pytest.approx(
            summary['usage_entropy'])

    slots = torch.zeros(CLASSES, 8, dtype=torch.float64)
    pixels = torch.zeros(CLASSES, dtype=torch.float64)
    for record, sample in zip(records, samples):
        label = sample.gt_sem_seg.data[0]
        assert sample.img_shape == sample.ori_shape == tuple(label.shape)
        # ERFNet's decoder works at half the input size.
        assert tuple(2 * s for s in record.out_size) == tuple(label.shape)
        slots += _class_slots(record, 0, label, 2)
        pixels += torch.bincount(label[label < CLASSES],
                                 minlength=CLASSES).double()
    assert summary['class_pixels'] == pixels.tolist()
    expected = slots / slots.sum(1, keepdim=True).clamp_min(1)
    assert torch.allclose(torch.tensor(summary['expert_given_class'],
                                       dtype=torch.float64), expected)
    assert sum(summary['class_pixels']) > 0.9 * 2 * 64 * 128


def _sample(label: torch.Tensor) -> SegDataSample:
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=label[None])
    shape = tuple(label.shape)
    sample.set_metainfo(dict(img_shape=shape, ori_shape=shape))
    return sample


class _Runner:
    """The parts of a Runner the hook uses."""

    def __init__(self, model, work_dir, classes=(), hierarchy=False):
        self.model = model
        self.log_processor = SimpleNamespace(log_with_hierarchy=hierarchy)
        self.message_hub = MessageHub.get_instance(f'routing-{id(self)}')
        self.work_dir = str(work_dir)
        self.timestamp = 'test'
        self.hooks = []
        self.iter = 0
        self._train_loop = None
        loop = SimpleNamespace(dataloader=SimpleNamespace(
            dataset=SimpleNamespace(metainfo=dict(classes=classes))))
        self.val_loop = self.test_loop = loop


def test_slide_inference_counts_every_crop(tmp_path):
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = load_config(CONFIG)
    cfg.model.test_cfg = dict(mode='slide', crop_size=(32, 64),
                              stride=(24, 48))
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    runner = _Runner(model, tmp_path, classes=[str(c) for c in
                                               range(CLASSES)])
    hook = RoutingStatsHook(draw_class_maps=False)
    layer = moe_layers(model)[LAYER]
    _diversify_gate(layer)
    records = []
    layer.register_forward_hook(
        lambda m, a, o: records.append(_copy(m.last_routing)))
    hook.before_run(runner)
    hook.before_test_epoch(runner)
    labels = [torch.randint(0, 4, (8, 16)).repeat_interleave(8, 0)
              .repeat_interleave(8, 1) for _ in range(2)]
    labels[1][:4] = 255  # ignored
    data = dict(inputs=[torch.randint(0, 255, (3, 64, 128), dtype=torch.uint8)
                        for _ in labels],
                data_samples=[_sample(label) for label in labels])
    with torch.no_grad():
        outputs = model.test_step(data)
    hook.after_test_iter(runner, 0, data, outputs)
    hook.after_test_epoch(runner)

    windows = [(y, x) for y in (0, 24, 32) for x in (0, 48, 64)]
    assert len(records) == len(windows)  # one run per crop, batch of 2
    assert all(r.out_size == (16, 32) for r in records)
    assert _varied(records)
    summary = hook.results['test']['layers'][LAYER]
    _check(summary, _expected(records))
    slots = sum(
        _class_slots(record, image, label, 2, offset)
        for record, offset in zip(records, windows)
        for image, label in enumerate(labels))
    expected = slots / slots.sum(1, keepdim=True).clamp_min(1)
    assert torch.allclose(torch.tensor(summary['expert_given_class'],
                                       dtype=torch.float64), expected)
    pixels = sum(torch.bincount(label[label < CLASSES], minlength=CLASSES)
                 for label in labels)
    assert summary['class_pixels'] == pixels.tolist()


class _TwoLayers(nn.Module):

    def __init__(self):
        super().__init__()
        self.first = PatchConvMoE(nn.Conv2d(3, 4, 3, padding=1),
                                  num_experts=4, top_k=2)
        self.second = PatchConvMoE(nn.Conv2d(4, 2, 1), num_experts=3,
                                   top_k=1, grid=(2, 2))

    def forward(self, x):
        return self.second(self.first(x))


def _train_step(hook, runner, model, batch_idx):
    """One training step; returns the records of each layer."""
    records = {}
    handles = [
        layer.register_forward_hook(
            lambda m, a, o, name=name: records.setdefault(name, []).append(
                _copy(m.last_routing)))
        for name, layer in moe_layers(model).items()
    ]
    hook.before_train_iter(runner, batch_idx)
    model(torch.randn(2, 3, 12, 18))
    hook.after_train_iter(runner, batch_idx)
    for handle in handles:
        handle.remove()
    return records


def test_counts_are_summed_over_ranks_before_logging(tmp_path, monkeypatch):
    import mmengine.dist

    def double(data, op='sum', group=None):  # two ranks with equal counts
        assert op == 'sum'
        for key in data:
            data[key] = data[key] * 2

    model = _TwoLayers()
    runner = _Runner(model, tmp_path)
    hook = RoutingStatsHook(interval=1)
    hook.before_run(runner)
    hook.before_train(runner)
    single = _train_step(hook, runner, model, 0)
    first = hook.results['train']['layers']
    monkeypatch.setattr(mmengine.dist, 'all_reduce_dict', double)
    doubled = _train_step(hook, runner, model, 1)
    second = hook.results['train']['layers']
    for name in ('first', 'second'):
        _check(first[name], _expected(single[name]))
        expected = _expected(doubled[name])
        expected['patches'] *= 2
        _check(second[name], expected)  # shares unchanged, counts doubled
    logged = runner.message_hub.get_scalar(
        'train/moe/train/second/usage_entropy')
    assert logged.current() == pytest.approx(
        _expected(doubled['second'])['usage_entropy'])


KEYS = ('train/moe/train/first/usage_entropy',
        'train/moe/first/usage_entropy')


@pytest.mark.parametrize('hierarchy,key,other', [(False, *KEYS),
                                                 (True, *KEYS[::-1])])
def test_the_mode_is_named_once_in_the_logged_tag(tmp_path, hierarchy, key,
                                                  other):
    model = _TwoLayers()
    runner = _Runner(model, tmp_path, hierarchy=hierarchy)
    hook = RoutingStatsHook(interval=1)
    hook.before_run(runner)
    hook.before_train(runner)
    _train_step(hook, runner, model, 0)
    scalars = runner.message_hub.log_scalars
    assert key in scalars and other not in scalars


def test_one_method_per_stage_for_every_mode():
    """MMEngine's Hook sends before_val_epoch, after_test_iter, ... to
    _before_epoch / _after_iter / _after_epoch with the mode."""
    own = vars(RoutingStatsHook)
    for stage in ('before_val_epoch', 'before_test_epoch', 'after_val_iter',
                  'after_test_iter', 'after_val_epoch', 'after_test_epoch',
                  'before_train_iter', 'after_train_iter'):
        assert stage not in own, stage
    for method in ('_before_epoch', '_before_iter', '_after_iter',
                   '_after_epoch'):
        assert method in own, method
    stages = set(RoutingStatsHook().get_triggered_stages())
    assert {'before_val_epoch', 'after_test_iter', 'after_val_epoch',
            'after_train_iter'} <= stages


def _logged_iterations(tmp_path, logger, hook, length=5) -> list:
    """The iterations (1-based) after which ``hook`` logs in one epoch of
    ``length`` training iterations with ``logger`` as the LoggerHook."""
    from mmengine.hooks import LoggerHook
    model = _TwoLayers()
    runner = _Runner(model, tmp_path)
    runner.hooks = [LoggerHook(**logger)] if logger is not None else []
    runner.train_dataloader = list(range(length))
    hook.before_run(runner)
    hook.before_train(runner)
    logged = []
    for batch_idx in range(length):
        runner.iter = batch_idx
        _train_step(hook, runner, model, batch_idx)
        if hook.results.get('train', {}).get('iter') == batch_idx + 1:
            logged.append(batch_idx + 1)
    return logged


@pytest.mark.parametrize('logger,interval,expected', [
    (dict(interval=2), None, [2, 4]),
    (dict(interval=2, ignore_last=False), None, [2, 4, 5]),
    (dict(interval=5), None, [5]),
    (dict(interval=7), None, [5]),  # an epoch shorter than the interval
    (dict(interval=1), 2, [2, 4]),  # the hook's own interval
    (dict(interval=1, ignore_last=False), 3, [3, 5]),
    (None, None, [5]),  # no LoggerHook: MMSeg's interval 50
])
def test_logs_when_the_logger_hook_logs(tmp_path, logger, interval,
                                        expected):
    hook = RoutingStatsHook(interval=interval)
    assert _logged_iterations(tmp_path, logger, hook) == expected


def test_layer_names_do_not_depend_on_wrappers(tmp_path):
    from mmseg.models import SegTTAModel

    class Segmentor(_TwoLayers):

        def test_step(self, data):
            return self(data)

    model = Segmentor()
    tta = SegTTAModel(module=model)
    runner = _Runner(tta, tmp_path)
    hook = RoutingStatsHook(interval=1)
    hook.before_run(runner)
    assert sorted(hook._layers) == ['first', 'second']


def test_unmatched_runs_skip_classes_with_one_warning(tmp_path, monkeypatch):
    from moe_seg_plugin.engine import routing_stats_hook
    warnings = []
    monkeypatch.setattr(routing_stats_hook, 'print_log',
                        lambda message, **kwargs: warnings.append(message))
    model = _TwoLayers()
    runner = _Runner(model, tmp_path, classes=['a', 'b'])
    hook = RoutingStatsHook(draw_class_maps=False)
    hook.before_run(runner)
    hook.before_val_epoch(runner)
    for _ in range(2):
        model(torch.randn(1, 3, 12, 18))
        model(torch.randn(1, 3, 12, 18))  # a second run for the same batch
        hook.after_val_iter(runner, 0, None,
                            [_sample(torch.zeros(12, 18, dtype=torch.long))])
    hook.after_val_epoch(runner)
    summary = hook.results['val']['layers']['first']
    assert summary['patches'] == 4 * 9
    assert summary['class_pixels'] == [0, 0]
    # One warning per layer, not one per batch.
    assert len(warnings) == 1 and 'do not match' in warnings[0]
    lines = pathlib.Path(tmp_path, 'routing_stats.json').read_text()
    assert json.loads(lines)['mode'] == 'val'
    hook.after_run(runner)
    model(torch.randn(1, 3, 12, 18))  # hooks removed: nothing counted
    assert hook._counts['val']['first'].summary()['patches'] == 4 * 9


def test_samples_repeated_by_a_distributed_sampler_are_left_out(tmp_path):
    from mmengine.dataset import DefaultSampler
    model = _TwoLayers()
    runner = _Runner(model, tmp_path, classes=['a', 'b'])
    # Rank 1 of 2 over 3 images: positions 1 and 3 of the padded list; the
    # second is image 0 again.
    sampler = DefaultSampler(list(range(3)), shuffle=False)
    sampler.rank, sampler.world_size = 1, 2
    runner.val_loop.dataloader.sampler = sampler
    hook = RoutingStatsHook(draw_class_maps=False)
    hook.before_run(runner)
    hook.before_val_epoch(runner)
    labels = [torch.zeros(12, 18, dtype=torch.long),
              torch.ones(12, 18, dtype=torch.long)]
    for label in labels:
        model(torch.randn(1, 3, 12, 18))
        hook.after_val_iter(runner, 0, None, [_sample(label)])
    hook.after_val_epoch(runner)
    summary = hook.results['val']['layers']['first']
    assert summary['patches'] == 9
    assert summary['class_pixels'] == [12 * 18, 0]


def _entries(path: pathlib.Path) -> list:
    return [(e['mode'], e['iter'])
            for e in map(json.loads, path.read_text().splitlines())]


def test_a_resumed_run_drops_what_the_killed_run_wrote_after_it(tmp_path):
    path = tmp_path / 'routing_stats.json'
    killed = [('train', 1), ('train', 2), ('val', 2), ('train', 3),
              ('train', 4), ('val', 4), ('train', 5), ('val', 5),
              ('test', 0)]
    path.write_text(''.join(
        json.dumps(dict(mode=mode, iter=step, run='killed', layers={})) +
        '\n' for mode, step in killed) + '{"mode": "train", "it')  # cut
    runner = _Runner(_TwoLayers(), tmp_path)
    runner.iter = 4  # resumed from iter_4.pth
    hook = RoutingStatsHook(interval=1)
    hook.before_run(runner)
    hook.before_train(runner)
    assert _entries(path) == killed[:6] + [('test', 0)]
    # A run starting at 0 (--resume found no checkpoint: killed before the
    # first one, or its save failed) keeps no train/val entry of before.
    runner.iter = 0
    hook.before_train(runner)
    assert _entries(path) == [('test', 0)]


@pytest.mark.slow
def test_resume_continues_the_file_without_repeating_iterations(tmp_path):
    import subprocess
    import sys

    data = tmp_path / 'data'
    write_cityscapes(str(data), num_train=4, num_val=1, height=64,
                     width=128, seed=5)
    work = tmp_path / 'work'
    options = [
        f'{loader}.dataset.data_root={data}'
        for loader in ('train_dataloader', 'val_dataloader')
    ] + [
        'train_dataloader.batch_size=1', 'train_dataloader.num_workers=0',
        'val_dataloader.num_workers=0',
        'train_dataloader.dataset.pipeline.2.scale=(128,64)',
        'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
        'val_dataloader.dataset.pipeline.1.scale=(128,64)',
        'model.data_preprocessor.size=(64,64)', 'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.checkpoint.save_last=False',
        'default_hooks.logger.interval=1', 'param_scheduler.0.end=100'
    ]

    def train(max_iters, *extra):
        result = subprocess.run(
            [sys.executable, 'tools/train.py', CONFIG, '--work-dir',
             str(work), *extra, '--cfg-options', *options,
             f'train_cfg.max_iters={max_iters}'],
            cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-4000:]

    # Checkpoints at 2 and 4, then "killed" after iteration 5 (logged and
    # validated, no checkpoint): --resume goes on from iteration 4.
    train(5)
    path = work / 'routing_stats.json'
    assert _entries(path)[-2:] == [('train', 5), ('val', 5)]
    train(6, '--resume')
    assert _entries(path) == [('train', 1), ('train', 2), ('val', 2),
                              ('train', 3), ('train', 4), ('val', 4),
                              ('train', 5), ('train', 6), ('val', 6)]
