"""Write model-index.yml, which ``mim search moe_seg_plugin`` reads.

One entry per shipped config: architecture, training data, crop size,
parameters and FLOPs at the crop size (batch 1, MoE layers as they run) and
the PatchConvMoE settings; each architecture's collection points at its
configs/<folder>/README.md. Run it after adding or changing a config; the
tests check that the file lists every shipped config with its current
settings, and that each configs/<folder>/README.md lists that folder's
configs with the same parameters and FLOPs (tests/docs/test_docs.py).

Usage:
    python tools/misc/model_index.py [--out model-index.yml] [--no-flops]
        [--update]

``--update`` keeps the entries the file already has and counts only the
configs it does not list yet (and drops the ones no longer shipped). The
mmpretrain configs (configs/convnext) need the mmpretrain extra: run it in
an environment that has it.
"""
import argparse
import os.path as osp
import sys
import warnings


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write model-index.yml (mim search) for every shipped '
        'config.')
    parser.add_argument('--out', default='model-index.yml',
                        help='output file (default model-index.yml)')
    parser.add_argument('--no-flops', action='store_true',
                        help='leave out parameters and FLOPs (fast)')
    parser.add_argument('--update', action='store_true',
                        help='keep the entries --out lists; count only the '
                        'configs it does not list yet')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings('ignore')
    import yaml

    from moe_seg_plugin.engine import clear_errors
    from moe_seg_plugin.evaluation.model_index import model_index
    from moe_seg_plugin_startup.config_scope import config_root

    kept = []
    if args.update and osp.exists(args.out):
        with open(args.out, encoding='utf-8') as f:
            kept = (yaml.safe_load(f) or {}).get('Models') or []
    ok, index = clear_errors(lambda: model_index(
        config_root(), flops=not args.no_flops,
        progress=lambda path: print(f'  {path}', file=sys.stderr),
        kept=kept))
    if not ok:
        return 2
    header = ('# Written by tools/misc/model_index.py; read by `mim search '
              'moe_seg_plugin`.\n')
    with open(args.out, 'w', encoding='utf-8') as f:
        f.write(header)
        yaml.safe_dump(index, f, sort_keys=False, allow_unicode=True)
    print(f'{len(index["Models"])} configs in {osp.abspath(args.out)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
