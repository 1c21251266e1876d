"""Generate synthetic street scenes in the Cityscapes or BDD100K layout.

The scenes carry the 19 Cityscapes train ids, so MMSeg's stock
CityscapesDataset / BDD100KDataset (and configs/_base_/datasets/street_*.py)
read them unchanged. Same arguments, same bytes.

Usage:
    python tools/misc/generate_street_data.py [--layout cityscapes] [--out DIR]
        [--num-train 200] [--num-val 50] [--height 256] [--width 512]
        [--seed 0] [--overwrite]
"""
import argparse
import os
import os.path as osp
import shutil
import sys
import time
from typing import Optional, Sequence

DEFAULT_OUT = {
    'cityscapes': osp.join('data', 'street_cityscapes'),
    'bdd100k': osp.join('data', 'street_bdd100k'),
}
# Top-level folders a layout writes; --overwrite clears these only.
LAYOUT_DIRS = {
    'cityscapes': ('leftImg8bit', 'gtFine'),
    'bdd100k': ('images', 'labels'),
}
# Image and label folders of a split.
SPLIT_DIRS = {
    'cityscapes': ('leftImg8bit/{split}', 'gtFine/{split}'),
    'bdd100k': ('images/10k/{split}', 'labels/sem_seg/masks/{split}'),
}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--layout', choices=sorted(DEFAULT_OUT),
                        default='cityscapes',
                        help='file layout to write (default: cityscapes)')
    parser.add_argument('--out', default=None,
                        help='output folder (default: data/street_cityscapes '
                        'or data/street_bdd100k)')
    parser.add_argument('--num-train', type=int, default=200,
                        help='images of the train split (default: 200)')
    parser.add_argument('--num-val', type=int, default=50,
                        help='images of the val split (default: 50)')
    parser.add_argument('--height', type=int, default=256,
                        help='image height in pixels (default: 256)')
    parser.add_argument('--width', type=int, default=512,
                        help='image width in pixels (default: 512)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of all scenes and BDD100K file names '
                        '(default: 0)')
    parser.add_argument('--overwrite', action='store_true',
                        help='write into a non-empty output folder, first '
                        "deleting the layout's own subfolders there")
    parser.add_argument('--quiet', action='store_true',
                        help='no progress bar')
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = DEFAULT_OUT[args.layout]
    if args.num_train < 0 or args.num_val < 0:
        parser.error('--num-train and --num-val must be >= 0')
    if args.height < 8 or args.width < 8:
        parser.error('--height and --width must be at least 8')
    return args


def prepare_out_dir(out: str, layout: str, overwrite: bool) -> None:
    """Refuse a non-empty ``out`` unless ``overwrite``; then clear it."""
    if osp.isdir(out) and os.listdir(out):
        if not overwrite:
            sys.exit(f'error: output folder {out!r} exists and is not empty; '
                     'pass --overwrite to replace its generated data, or '
                     'choose another --out')
        for name in LAYOUT_DIRS[layout]:
            if osp.isdir(osp.join(out, name)):
                shutil.rmtree(osp.join(out, name))
    elif osp.exists(out) and not osp.isdir(out):
        sys.exit(f'error: output path {out!r} exists and is not a folder')


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    prepare_out_dir(args.out, args.layout, args.overwrite)
    # Imported only now, so a refused run returns at once.
    from moe_seg_plugin.datasets.layouts import (write_bdd100k,
                                                 write_cityscapes)
    writer = write_cityscapes if args.layout == 'cityscapes' else \
        write_bdd100k
    print(f'Writing {args.num_train} train + {args.num_val} val '
          f'{args.height}x{args.width} street scenes (seed {args.seed}) in '
          f'the {args.layout} layout to {args.out}')
    start = time.time()
    result = writer(args.out, num_train=args.num_train,
                    num_val=args.num_val, height=args.height,
                    width=args.width, seed=args.seed,
                    progress=not args.quiet)
    seconds = time.time() - start
    total = args.num_train + args.num_val
    print(f'Wrote {result.summary()} ({seconds:.1f} s, '
          f'{total / max(seconds, 1e-9):.1f} images/s)')
    for split, count in result.counts.items():
        if not count:
            continue
        folders = [osp.join(args.out, d.format(split=split))
                   for d in SPLIT_DIRS[args.layout]]
        print(f'  {split}: {count} samples, images in {folders[0]}, '
              f'labels in {folders[1]}')


if __name__ == '__main__':
    main()
