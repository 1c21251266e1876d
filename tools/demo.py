"""The main job on built-in data: a stock model and its PatchConvMoE variant.

Generates street scenes in the Cityscapes layout (if not there yet), trains
MMSeg's ERFNet + FCN head and the same model with a PatchConvMoE layer at the
decoder's last convolution (8 experts, top-2, 3x3 grid, 2Conv-GAP gate,
switch loss) with MMEngine's Runner for a short CPU schedule, evaluates both
with MMSeg's IoUMetric, prints a side-by-side table (mIoU, parameters,
latency) and saves a routing map: which expert each patch of a validation
image went to.

Usage:
    python tools/demo.py [--iters 300] [--data-root DIR] [--work-dir DIR]
"""
import argparse
import os
import os.path as osp
import sys
import time

CONFIGS = {
    'ERFNet (stock)':
    'configs/erfnet/erfnet_fcn_1xb4-1k_street-cityscapes-256x256.py',
    'ERFNet + PatchConvMoE':
    'configs/erfnet/patchmoe_erfnet_fcn_1xb4-1k_street-cityscapes-256x256.py',
}
IMAGE_SIZE = (128, 256)  # height, width of the generated scenes
CROP = (128, 256)  # whole scenes, after a mild random resize


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--iters', type=int, default=300,
                        help='training iterations per model')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--lr', type=float, default=2e-3,
                        help='AdamW learning rate')
    parser.add_argument('--num-train', type=int, default=240,
                        help='generated training scenes')
    parser.add_argument('--num-val', type=int, default=40,
                        help='generated validation scenes')
    parser.add_argument('--data-root', default='data/street_cityscapes_demo')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def say(message: str) -> None:
    print(message, flush=True)


def ensure_data(args: argparse.Namespace) -> None:
    """Generate the scenes unless a complete set is already there."""
    from moe_seg_plugin.datasets import write_cityscapes
    marker = osp.join(args.data_root, 'leftImg8bit', 'val')
    if osp.isdir(marker) and len(_files(marker)) >= args.num_val:
        say(f'      using the scenes in {args.data_root}')
        return
    start = time.perf_counter()
    written = write_cityscapes(
        args.data_root, num_train=args.num_train, num_val=args.num_val,
        height=IMAGE_SIZE[0], width=IMAGE_SIZE[1], seed=args.seed,
        progress=True)
    say(f'\n      {written.summary()} ({time.perf_counter() - start:.0f} s)')


def _files(folder: str):
    return [f for _, _, names in os.walk(folder) for f in names]


def demo_options(args: argparse.Namespace) -> dict:
    """Settings that shrink the street configs to a few CPU minutes."""
    scale = (IMAGE_SIZE[1], IMAGE_SIZE[0])
    options = {
        'train_cfg.max_iters': args.iters,
        'train_cfg.val_interval': args.iters,
        'param_scheduler.0.end': args.iters,
        'default_hooks.checkpoint.interval': args.iters,
        'default_hooks.logger.interval': max(1, args.iters // 6),
        'train_dataloader.batch_size': args.batch_size,
        'train_dataloader.dataset.pipeline.2.scale': scale,
        'train_dataloader.dataset.pipeline.2.ratio_range': (0.75, 1.5),
        'train_dataloader.dataset.pipeline.3.crop_size': CROP,
        'model.data_preprocessor.size': CROP,
        'optim_wrapper.optimizer': dict(
            _delete_=True, type='AdamW', lr=args.lr, weight_decay=1e-4),
        'randomness': dict(seed=args.seed),
        'log_level': 'ERROR',
    }
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options[f'{loader}.dataset.data_root'] = args.data_root
    for loader in ('val_dataloader', 'test_dataloader'):
        options[f'{loader}.dataset.pipeline.1.scale'] = scale
    return options


def train_and_test(name: str, config: str, args: argparse.Namespace):
    """Train one model, then test it; returns (runner, metrics, seconds)."""
    from mmengine.runner import Runner

    from moe_seg_plugin.engine import load_config
    from moe_seg_plugin.engine.progress import ProgressHook

    cfg = load_config(config, demo_options(args))
    cfg.work_dir = osp.join(args.work_dir, osp.splitext(
        osp.basename(config))[0])
    runner = Runner.from_cfg(cfg)
    runner.register_hook(ProgressHook(title=f'      {name}'), 'LOW')
    start = time.perf_counter()
    runner.train()
    seconds = time.perf_counter() - start
    metrics = runner.test()
    return runner, metrics, seconds


def latency_ms(runner) -> float:
    """Median CPU latency of one validation-sized image (batch 1)."""
    import torch

    from moe_seg_plugin.evaluation import measure_latency
    model = runner.model
    model.eval()
    image = torch.rand(1, 3, *IMAGE_SIZE) * 255
    inputs = model.data_preprocessor(dict(inputs=list(image)))['inputs']
    return measure_latency(lambda: model(inputs, mode='tensor'),
                           warmup=2, repeats=10)['median_ms']


def save_routing_map(runner, args: argparse.Namespace) -> str:
    """Draw the routing of the first validation image next to its ground
    truth and prediction; returns the PNG path."""
    import mmcv
    import torch

    from moe_seg_plugin.models import moe_layers
    from moe_seg_plugin.visualization import save_png
    from moe_seg_plugin.visualization.routing_picture import \
        routing_beside_labels

    model = runner.model
    model.eval()
    dataset = runner.test_dataloader.dataset
    sample = dataset[0]
    data = model.data_preprocessor(
        dict(inputs=[sample['inputs']], data_samples=[sample['data_samples']]))
    with torch.no_grad():
        result = model.predict(data['inputs'], data['data_samples'])[0]
    image = mmcv.imread(sample['data_samples'].img_path, channel_order='rgb')
    _, layer = next(iter(moe_layers(model).items()))
    picture = routing_beside_labels(image, result, layer.last_routing,
                                    dataset.metainfo,
                                    osp.join(args.work_dir, 'vis'))
    out = osp.join(args.work_dir, 'routing_map.png')
    save_png(picture, out)
    return out


def print_table(rows) -> None:
    from prettytable import PrettyTable
    table = PrettyTable(['model', 'mIoU (%)', 'aAcc (%)', 'params',
                         'latency (ms)', 'train (s)'])
    for row in rows:
        table.add_row(row)
    table.align['model'] = 'l'
    say(table.get_string())


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    import warnings
    warnings.filterwarnings('ignore')  # the stack's deprecation chatter
    import torch

    import moe_seg_plugin  # noqa: F401
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    say(f'[1/4] street scenes ({args.num_train} train / {args.num_val} val, '
        f'{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]})')
    ensure_data(args)
    rows, runners = [], {}
    for step, (name, config) in enumerate(CONFIGS.items(), start=2):
        say(f'[{step}/4] training {name} for {args.iters} iterations, then '
            f'testing (IoUMetric on {args.num_val} scenes)')
        runner, metrics, seconds = train_and_test(name, config, args)
        runners[name] = runner
        params = sum(p.numel() for p in runner.model.parameters())
        rows.append([
            name, f"{metrics['mIoU']:.1f}", f"{metrics['aAcc']:.1f}",
            f'{params / 1e6:.3f} M', f'{latency_ms(runner):.1f}',
            f'{seconds:.0f}'
        ])
        say(f"      mIoU {metrics['mIoU']:.1f} %")
    say('[4/4] results (latency: median of 10 runs, batch 1, '
        f'{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}, CPU)')
    print_table(rows)
    picture = save_routing_map(runners['ERFNet + PatchConvMoE'], args)
    say(f'routing map of a validation scene (left: patch colour = first '
        f'expert, labels = expert:weight; middle: ground truth; right: '
        f'prediction): {picture}')
    say(f'total time {time.perf_counter() - start:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
