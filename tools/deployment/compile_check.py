"""torch.compile on a segmentor's training step: does it run, how many
graphs and graph breaks, and where they are.

Compiles ``model.train_step`` (what MMEngine compiles for
``compile=dict(...)`` in a config) on a synthetic batch, runs it once and
explains it with ``torch._dynamo.explain``: graph breaks, and the places
(file, line, function) where tracing broke, this plugin's counted apart (a
break inside nested calls counts once per frame that resumes after it). With
``--compare-stock`` the stock model (MoE wrappers removed) is checked too,
so the breaks the MoE layers add stand out.

Usage:
    python tools/deployment/compile_check.py CONFIG [--capacity-factor F]
        [--backend eager] [--batch 2] [--shape 64 64] [--compare-stock]
        [--device cpu|cuda] [--cfg-options key=value ...]

The default backend, ``eager``, traces and checks without generating code
(no C++ compiler needed); ``inductor`` compiles for real.
"""
import argparse
import collections
import os.path as osp
import sys
import time
import warnings

from mmengine.config import DictAction

PLUGIN = osp.join('moe_seg_plugin', '')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='torch.compile on a segmentor\'s train_step: graphs, '
        'graph breaks and where they are.')
    parser.add_argument('config', help='model config file')
    parser.add_argument('--capacity-factor', type=float,
                        help='put every MoE layer in capacity mode')
    parser.add_argument('--backend', default='eager',
                        help='torch.compile backend (default eager)')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--shape', type=int, nargs=2, default=[64, 64],
                        metavar=('H', 'W'))
    parser.add_argument('--compare-stock', action='store_true',
                        help='check the stock model too')
    parser.add_argument('--device', default='cpu',
                        help='where the model runs: cpu (default) or '
                        'cuda[:i]')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of CONFIG, key=value')
    return parser.parse_args(argv)


def synthetic_batch(batch: int, shape, num_classes: int, seed: int = 0):
    """A data batch as MMSeg's data loader gives it: uint8 images and
    SegDataSamples with random labels."""
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    generator = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, *shape), dtype=torch.uint8,
                                    generator=generator))
        sample = SegDataSample(metainfo=dict(
            img_shape=tuple(shape), ori_shape=tuple(shape),
            pad_shape=tuple(shape)))
        sample.gt_sem_seg = PixelData(data=torch.randint(
            0, num_classes, (1, *shape), generator=generator))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def build_model(cfg, shape, capacity_factor):
    """The segmentor of ``cfg`` in training mode on the CPU."""
    import torch
    from mmengine.model import revert_sync_batchnorm
    from mmseg.registry import MODELS

    from moe_seg_plugin.moe import PatchConvMoE
    cfg.model.data_preprocessor.size = tuple(shape)
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    for layer in model.modules():
        if isinstance(layer, PatchConvMoE) and capacity_factor is not None:
            layer.capacity_factor = capacity_factor
    return model.train()


def check(model, args) -> dict:
    """Compile and run ``model.train_step`` once, run it eagerly, then
    explain it."""
    import torch
    from mmengine.optim import OptimWrapper
    num_classes = model.decode_head.num_classes
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0))
    batch = synthetic_batch(args.batch, args.shape, num_classes)
    torch._dynamo.reset()
    step = torch.compile(model.train_step, backend=args.backend)
    start = time.perf_counter()
    compiled = step(batch, optim)
    seconds = time.perf_counter() - start
    eager = model.train_step(batch, optim)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model.train_step)(batch, optim)
    torch._dynamo.reset()
    # A break inside nested calls is reported once per frame that resumes
    # after it: count the places (innermost frame) where tracing broke.
    places = collections.Counter()
    for reason in explained.break_reasons:
        frame = reason.user_stack[-1] if reason.user_stack else None
        where = ('(unknown)' if frame is None else
                 f'{_short(frame.filename)}:{frame.lineno} ({frame.name})')
        places[where] += 1
    return dict(
        loss_compiled=float(compiled['loss']),
        loss_eager=float(eager['loss']),
        seconds_first_step=seconds,
        graphs=explained.graph_count,
        graph_breaks=explained.graph_break_count,
        break_sites=len(places),
        plugin_sites=sum(where.startswith(PLUGIN) for where in places),
        places=dict(places))


def _short(filename: str) -> str:
    """A file's path from its package folder on (moe_seg_plugin/...,
    mmseg/..., torch/...)."""
    parts = filename.replace('\\', '/').split('/')
    for package in ('moe_seg_plugin', 'mmseg', 'mmengine', 'mmcv', 'torch'):
        if package in parts:
            return '/'.join(parts[len(parts) - parts[::-1].index(package)
                                  - 1:])
    return parts[-1]


def run(args: argparse.Namespace) -> dict:
    from moe_seg_plugin.engine import load_config
    from moe_seg_plugin.models.stock import stock_config
    if args.batch < 1 or min(args.shape) < 1:
        raise ValueError(f'--batch and --shape must be positive, got '
                         f'{args.batch} and {args.shape}')
    if args.capacity_factor is not None and not args.capacity_factor > 0:
        raise ValueError(f'--capacity-factor must be > 0, got '
                         f'{args.capacity_factor}')
    cfg = load_config(args.config, args.cfg_options)
    result = dict(config=args.config, backend=args.backend,
                  capacity_factor=args.capacity_factor,
                  model=check(build_model(cfg, args.shape,
                                          args.capacity_factor).to(
                                              args.device), args))
    if args.compare_stock:
        result['stock'] = check(
            build_model(stock_config(cfg), args.shape, None).to(
                args.device), args)
    return result


def report(result: dict) -> str:
    mode = ('default mode' if result['capacity_factor'] is None else
            f"capacity mode (factor {result['capacity_factor']:g})")
    lines = [f"{result['config']}: train_step compiled with backend "
             f"{result['backend']!r}, MoE layers in {mode}"]
    for name in ('model', 'stock'):
        part = result.get(name)
        if part is None:
            continue
        lines.append(
            f"{name}: {part['graphs']} graphs, {part['graph_breaks']} graph "
            f"breaks at {part['break_sites']} places "
            f"({part['plugin_sites']} in moe_seg_plugin); loss "
            f"compiled {part['loss_compiled']:.4f}, eager "
            f"{part['loss_eager']:.4f}; first compiled step (tracing "
            f"included) {part['seconds_first_step']:.1f} s")
        for where, count in sorted(part['places'].items()):
            lines.append(f'  {where}: {count} break(s)')
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings('ignore')
    from moe_seg_plugin.engine import clear_errors
    ok, result = clear_errors(lambda: run(args))
    if not ok:
        return 2
    print(report(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
