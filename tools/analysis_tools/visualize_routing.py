"""Routing pictures of a PatchConvMoE checkpoint: per image one PNG with the
image, the prediction and, per MoE layer, the patch grid coloured by the
chosen expert(s) with their weights.

Each grid cell is split in bands as wide as the mixing weights of its
experts, tinted in the experts' colours and labelled ``E3 0.62`` (top-k
choices, highest first); a legend names the colours. The routing is also
written to OUT_DIR/routing.json (per image and layer: grid, cell boxes in
image pixels, experts, weights).

Inference runs in 'whole' mode (model.test_cfg.mode='whole' is forced): in
'slide' mode the layer would route several crops and the picture could show
only the last one.

Usage:
    python tools/analysis_tools/visualize_routing.py CONFIG CHECKPOINT
        --img IMG [IMG ...] [--out-dir DIR] [--layer PATH ...]
        [--device cpu] [--opacity 0.45] [--cfg-options key=value ...]
"""
import argparse
import json
import os.path as osp
import sys
from typing import List

from mmengine.config import DictAction

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\nUsage')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file of a MoE model')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--img', nargs='+', required=True, metavar='IMG',
        help='image files and/or folders (searched recursively for '
        f"{', '.join(IMAGE_SUFFIXES)})")
    parser.add_argument(
        '--out-dir', default='work_dirs/routing_maps',
        help='where the PNGs and routing.json go (default: %(default)s)')
    parser.add_argument(
        '--layer', nargs='+', metavar='PATH',
        help='dotted path(s) of the PatchConvMoE layer(s) to draw '
        '(default: all)')
    parser.add_argument('--device', default='cpu',
                        help='device to run on (default: %(default)s)')
    parser.add_argument(
        '--opacity', type=float, default=0.45,
        help='opacity of the expert colours (default: %(default)s)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value')
    return parser.parse_args(argv)


def image_paths(inputs: List[str]) -> List[str]:
    """Image files from files and folders, in the given order (folders
    sorted, recursive).

    Raises:
        FileNotFoundError: For a path that does not exist, or no images.
    """
    from mmengine.utils import scandir
    paths = []
    for item in inputs:
        if osp.isfile(item):
            paths.append(item)
        elif osp.isdir(item):
            found = sorted(
                scandir(item, IMAGE_SUFFIXES, recursive=True,
                        case_sensitive=False))
            paths.extend(osp.join(item, name) for name in found)
        else:
            raise FileNotFoundError(f'--img: {item!r} does not exist')
    if not paths:
        raise FileNotFoundError(
            f'--img: no images ({", ".join(IMAGE_SUFFIXES)}) in {inputs}')
    return paths


def build_model(args: argparse.Namespace):
    """The model in 'whole' test mode with the checkpoint loaded."""
    from mmseg.apis import init_model

    from moe_seg_plugin.engine.checkpoint_fit import check_checkpoint_file
    from moe_seg_plugin.engine.run_setup import load_config
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(
            f'checkpoint {args.checkpoint!r} does not exist')
    cfg = load_config(args.config, args.cfg_options)
    if cfg.model.get('test_cfg') is None:
        cfg.model.test_cfg = dict()
    cfg.model.test_cfg.mode = 'whole'
    if not cfg.get('test_pipeline'):
        raise ValueError('the config has no test_pipeline (MMSeg dataset '
                         'configs define it); inference_model needs it')
    # init_model loads the weights as it builds the model: the check runs
    # first, on a model built for it.
    check_checkpoint_file(init_model(cfg, device='cpu'), args.checkpoint)
    return init_model(cfg, args.checkpoint, device=args.device)


def _output_name(path: str, used: set) -> str:
    stem = osp.splitext(osp.basename(path))[0]
    name, count = stem, 1
    while name in used:
        count += 1
        name = f'{stem}_{count}'
    used.add(name)
    return name + '.png'


def visualize(args: argparse.Namespace) -> List[str]:
    """Draw every image; returns the PNG paths."""
    import mmcv
    from mmengine.utils import ProgressBar, mkdir_or_exist
    from mmseg.apis import inference_model
    from mmseg.visualization import SegLocalVisualizer

    from moe_seg_plugin.evaluation.fixed_expert import select_layers
    from moe_seg_plugin.visualization import save_png
    from moe_seg_plugin.visualization.routing_picture import (
        routing_picture, routing_summary)
    paths = image_paths(args.img)
    model = build_model(args)
    layers = select_layers(model, args.layer)
    seg_visualizer = SegLocalVisualizer(name='visualize_routing', alpha=0.6)
    seg_visualizer.dataset_meta = model.dataset_meta
    mkdir_or_exist(args.out_dir)
    written, summaries, used = [], {}, set()
    bar = ProgressBar(len(paths))
    for path in paths:
        sample = inference_model(model, path)
        image = mmcv.imread(path, channel_order='rgb')
        drawn = routing_picture(image, sample, layers, seg_visualizer,
                                args.opacity)
        out = osp.join(args.out_dir, _output_name(path, used))
        save_png(drawn, out)
        written.append(out)
        summaries[path] = dict(png=out, layers=routing_summary(sample, layers))
        bar.update()
    with open(osp.join(args.out_dir, 'routing.json'), 'w') as f:
        json.dump(summaries, f, indent=1)
    print(f'\n{len(written)} routing picture(s) and routing.json in '
          f'{args.out_dir}')
    return written


def main(argv=None) -> int:
    from moe_seg_plugin.engine.run_setup import clear_errors
    args = parse_args(argv)
    done, _ = clear_errors(lambda: visualize(args))
    return 0 if done else 2


if __name__ == '__main__':
    sys.exit(main())
