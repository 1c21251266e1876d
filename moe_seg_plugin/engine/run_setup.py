"""What tools/train.py and tools/test.py do to a config before the Runner.

MMSeg's own tools do the same steps (config, --cfg-options, work dir, AMP,
TTA); the additions are checks that turn the usual deep tracebacks into one
clear message (missing data), and the few changes MMEngine needs to train
distributed on CPU-only machines (gloo, no CUDA device ids, no SyncBN).
"""
import os
import os.path as osp
import sys
from typing import Callable, Iterable, List, Optional, Tuple

import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

GENERATE_HINT = {
    'CityscapesDataset': 'cityscapes',
    'BDD100KDataset': 'bdd100k',
}


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config (plugin imported first, so ``moe_seg_plugin::`` and
    ``custom_imports`` resolve) and apply ``--cfg-options``."""
    import moe_seg_plugin  # noqa: F401
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file {path!r} does not exist')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def set_work_dir(cfg: Config, work_dir: Optional[str], config_path: str):
    """CLI --work-dir, else the config's, else ./work_dirs/<config name>."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        name = osp.splitext(osp.basename(config_path))[0]
        cfg.work_dir = osp.join('./work_dirs', name)


def _datasets(cfg: ConfigDict) -> List[ConfigDict]:
    """Leaf dataset configs inside dataset wrappers."""
    if 'datasets' in cfg:
        return [leaf for sub in cfg.datasets for leaf in _datasets(sub)]
    if 'dataset' in cfg:
        return _datasets(cfg.dataset)
    return [cfg]


def check_data_roots(cfg: Config,
                     loaders: Iterable[str] = ('train_dataloader',
                                               'val_dataloader',
                                               'test_dataloader')) -> None:
    """Fail early, and clearly, when a data set's image folder is missing.

    Raises:
        FileNotFoundError: Naming the config key, the folder, and how to
            generate the built-in street scenes or point at real data.
    """
    for loader in loaders:
        if not cfg.get(loader):
            continue
        for dataset in _datasets(cfg[loader].dataset):
            root = dataset.get('data_root') or ''
            prefix = (dataset.get('data_prefix') or {}).get('img_path', '')
            folder = osp.join(root, prefix)
            if osp.isdir(folder):
                continue
            layout = GENERATE_HINT.get(dataset.get('type'), 'cityscapes')
            raise FileNotFoundError(
                f'{loader}.dataset: image folder {folder!r} does not exist '
                f'(data_root={root!r}). To use the built-in street scenes, '
                f'generate them: `python tools/generate_street_data.py '
                f'--layout {layout} --out {root.rstrip("/") or "DIR"}`; for '
                f'real {dataset.get("type", "data")}, pass '
                f'`--cfg-options {loader}.dataset.data_root=/path/to/it`.')


def test_config(config: str,
                checkpoint: str,
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """The config of a test run of ``checkpoint`` (tools/test.py and the
    analysis tools): work dir set, checkpoint to load, training parts gone.

    A test run needs no training parts; left in, MMEngine builds the train
    loop (and reads the training data) as soon as a hook asks runner.iter.

    Raises:
        FileNotFoundError: If the config or checkpoint does not exist.
    """
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    cfg = load_config(config, cfg_options)
    cfg.launcher = launcher
    set_work_dir(cfg, work_dir, config)
    cfg.load_from = checkpoint
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper',
                'param_scheduler'):
        cfg[key] = None
    return cfg


def enable_amp(cfg: Config) -> None:
    """Mixed precision as MMSeg's --amp does; AMP needs a GPU here."""
    if not torch.cuda.is_available():
        raise RuntimeError(
            '--amp: MMEngine\'s AmpOptimWrapper needs a GPU (CUDA); on this '
            'CPU-only machine train without --amp')
    if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in the config.',
                  logger='current')
        return
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def _replace_sync_bn(node) -> int:
    """Turn every ``type='SyncBN'`` in a config tree into 'BN'."""
    count = 0
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
            count += 1
        for value in node.values():
            count += _replace_sync_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            count += _replace_sync_bn(value)
    return count


def cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Prepare a distributed run on a machine without CUDA.

    MMEngine's launcher assumes a CUDA device per process. Without one, the
    process group is started here with gloo (MMEngine then finds it
    initialised and keeps it), DDP wraps the model without device ids, and
    SyncBN (CUDA only) becomes BN.

    Returns:
        bool: True if the changes were made.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return False
    import torch.distributed as dist
    cfg.setdefault('env_cfg', ConfigDict())
    cfg.env_cfg.setdefault('dist_cfg', ConfigDict())
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    if launcher == 'pytorch' and not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or ConfigDict(
        type='MMDistributedDataParallel', broadcast_buffers=False)
    wrapper.setdefault('find_unused_parameters',
                       cfg.get('find_unused_parameters', False))
    wrapper.device_ids = None  # CPU modules take no device ids
    cfg.model_wrapper_cfg = wrapper
    replaced = _replace_sync_bn(cfg.model)
    rank = int(os.environ.get('RANK', 0))
    if rank == 0:
        print_log(
            f'distributed on CPU: gloo backend, DDP without device ids, '
            f'{replaced} SyncBN config(s) turned into BN', logger='current')
    return True


def use_tta(cfg: Config) -> None:
    """Test-time augmentation as MMSeg's tools/test.py --tta."""
    if 'tta_pipeline' not in cfg or 'tta_model' not in cfg:
        raise ValueError('--tta: the config has no tta_pipeline/tta_model '
                         '(MMSeg dataset configs define them)')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model


def runner_from_cfg(cfg: Config):
    """The Runner a config asks for (``runner_type``), as MMSeg's tools."""
    if 'runner_type' in cfg:
        from mmseg.registry import RUNNERS
        return RUNNERS.build(cfg)
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg)


def clear_errors(work: Callable[[], object]) -> Tuple[bool, object]:
    """Run ``work()``; a set-up error (bad config, missing file, bad
    option) is printed as one line instead of a traceback, unless
    MOE_SEG_DEBUG is set.

    Returns:
        tuple: (True, what ``work`` returned), or (False, None) after an
        error was printed.
    """
    try:
        return True, work()
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        if os.environ.get('MOE_SEG_DEBUG'):
            raise
        print(f'error: {exc}\n(set MOE_SEG_DEBUG=1 for the traceback)',
              file=sys.stderr)
        return False, None


def run_cli(build: Callable[[], object], action: str) -> int:
    """Build a runner and call ``runner.<action>()``; set-up errors end with
    one clear message (see :func:`clear_errors`).

    Returns:
        int: The process exit code (2 after a set-up error).
    """
    built, runner = clear_errors(build)
    if not built:
        return 2
    getattr(runner, action)()
    _close_process_group()
    return 0


def _close_process_group() -> None:
    """Leave the process group cleanly; MMEngine never destroys it, and a
    gloo group still alive at interpreter exit can abort the process."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
