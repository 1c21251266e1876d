"""What tools/train.py and tools/test.py do to a config before the Runner.

MMSeg's own tools do the same steps (config, --cfg-options, work dir, AMP,
TTA); the additions are checks that turn the usual deep tracebacks into one
clear message (missing or empty data folders, config syntax, and through
:mod:`.errors` unknown config keys and unreadable checkpoints, also when the
Runner meets them at the start of ``train()``/``test()``), and the few
changes MMEngine needs to train distributed on CPU-only machines (gloo, no
CUDA device ids, no SyncBN).
"""
import os
import os.path as osp
import re
import sys
from inspect import signature
from typing import Callable, Iterable, List, Optional, Tuple

import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

from .data_errors import unreadable_data_file
from .errors import SetupError, as_setup_error, frames

GENERATE_HINT = {
    'CityscapesDataset': 'cityscapes',
    'BDD100KDataset': 'bdd100k',
}


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config (plugin imported first, so ``moe_seg_plugin::`` and
    ``custom_imports`` resolve) and apply ``--cfg-options``.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        SetupError: If the config (or a ``_base_`` it inherits) is not valid
            Python, naming the file and line.
    """
    import moe_seg_plugin  # noqa: F401
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file {path!r} does not exist')
    try:
        cfg = Config.fromfile(path)
    except SyntaxError as exc:
        raise config_syntax_error(exc, path) from exc
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def config_syntax_error(exc: SyntaxError, path: str) -> SetupError:
    """One line for a syntax error in a config file: the file MMEngine was
    parsing (``path`` or one of its bases), the line and Python's reason."""
    parsed = [
        frame.f_locals['filename'] for frame in frames(exc.__traceback__)
        if isinstance(frame.f_locals.get('filename'), str)
        and frame.f_code.co_filename.replace('\\', '/').endswith(
            'mmengine/config/config.py')
    ]
    source = parsed[0] if parsed else path
    line = exc.lineno
    reason = exc.msg if line else str(exc)
    if line is None:  # MMEngine's own re-raise: "... (<unknown>, line 3)"
        found = re.search(r'line (\d+)', str(exc))
        line = int(found.group(1)) if found else None
        reason = reason.split(': ', 1)[-1]
        reason = re.sub(r' \(<unknown>, line \d+\)$', '', reason)
    where = f'{source!r}, line {line}' if line else repr(source)
    return SetupError(f'config file {where}: {type(exc).__name__}: '
                      f'{reason} (fix the Python syntax there)')


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
    """Fail early, and clearly, when a data set's folders cannot give data.

    Refused: an image folder that is missing or holds no image ending in
    the data set's ``img_suffix`` (searched recursively, as MMSeg's
    BaseSegDataset lists it), a missing annotation folder
    (``data_prefix.seg_map_path``) and a missing ``ann_file``.

    Raises:
        FileNotFoundError: Naming the config key, the folder, and how to
            generate the built-in street scenes or point at real data.
    """
    for loader in loaders:
        if not cfg.get(loader):
            continue
        for dataset in _datasets(cfg[loader].dataset):
            problem = _data_problem(dataset)
            if problem is not None:
                raise FileNotFoundError(
                    f'{loader}.dataset: {problem} '
                    f'{_data_hint(loader, dataset)}')


def _data_problem(dataset: ConfigDict) -> Optional[str]:
    """What keeps a leaf dataset config from finding its data, or None."""
    root = dataset.get('data_root') or ''
    prefix = dataset.get('data_prefix') or {}
    folder = osp.join(root, prefix.get('img_path', ''))
    if not osp.isdir(folder):
        return (f'image folder {folder!r} does not exist '
                f'(data_root={root!r}).')
    problem = _image_list_problem(dataset, root, folder)
    seg_map = prefix.get('seg_map_path')
    if problem is None and seg_map is not None and not osp.isdir(
            osp.join(root, seg_map)):
        problem = (f'annotation folder {osp.join(root, seg_map)!r} '
                   f'(data_prefix.seg_map_path) does not exist '
                   f'(data_root={root!r}).')
    return problem


def _image_list_problem(dataset: ConfigDict, root: str,
                        folder: str) -> Optional[str]:
    """A missing ``ann_file``, or an image folder without one image MMSeg
    would list (as BaseSegDataset: by ``ann_file`` if it names a file,
    else every file under ``folder`` ending in ``img_suffix``)."""
    ann_file = dataset.get('ann_file') or ''
    if ann_file and not osp.isdir(osp.join(root, ann_file)):
        if osp.isfile(osp.join(root, ann_file)):
            return None
        return (f'ann_file {osp.join(root, ann_file)!r} does not exist '
                f'(data_root={root!r}).')
    suffix = _img_suffix(dataset)
    if suffix is None or _has_images(folder, suffix, dataset):
        return None
    return (f'image folder {folder!r} holds no image ending in {suffix!r} '
            f'(img_suffix; searched recursively, data_root={root!r}).')


def _img_suffix(dataset: ConfigDict) -> Optional[str]:
    """The dataset's ``img_suffix``: the config's, else its class default;
    None if the class takes none (a data set that lists files its own
    way)."""
    if dataset.get('img_suffix') is not None:
        return dataset.img_suffix
    from mmseg.registry import DATASETS
    kind = dataset.get('type')
    cls = DATASETS.get(kind) if isinstance(kind, str) else kind
    if not isinstance(cls, type):
        return None
    param = signature(cls.__init__).parameters.get('img_suffix')
    if param is None or not isinstance(param.default, str):
        return None
    return param.default


def _has_images(folder: str, suffix: str, dataset: ConfigDict) -> bool:
    """Whether MMSeg's listing of ``folder`` finds one image."""
    from mmengine.fileio import list_dir_or_file
    files = list_dir_or_file(folder, list_dir=False, suffix=suffix,
                             recursive=True,
                             backend_args=dataset.get('backend_args'))
    return next(iter(files), None) is not None


def _data_hint(loader: str, dataset: ConfigDict) -> str:
    """How to generate the built-in street scenes or use real data."""
    root = dataset.get('data_root') or ''
    layout = GENERATE_HINT.get(dataset.get('type'), 'cityscapes')
    return (f'To use the built-in street scenes, generate them: '
            f'`python tools/misc/generate_street_data.py --layout {layout} '
            f'--out {root.rstrip("/") or "DIR"}`; for real '
            f'{dataset.get("type", "data")}, pass `--cfg-options '
            f'{loader}.dataset.data_root=/path/to/it`.')


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


def resume_seed(cfg: Config) -> Optional[int]:
    """Give a resumed run the seed of the run it resumes.

    MMEngine builds the data loaders (sampler order, loader workers' seeds)
    before it reads the checkpoint's seed, so a config without
    ``randomness.seed`` would shuffle and augment with a fresh seed after
    ``--resume``. The checkpoint to resume (``load_from``, else the work
    dir's ``last_checkpoint``, as MMEngine finds it) is read here first and
    its seed set as ``cfg.randomness.seed``.

    Args:
        cfg (Config): A training config with ``resume`` and ``work_dir``.

    Returns:
        int or None: The seed taken over, or None (not resuming, nothing to
        resume, or a checkpoint without a seed).
    """
    from mmengine.runner import find_latest_checkpoint
    if not cfg.get('resume'):
        return None
    path = cfg.get('load_from') or find_latest_checkpoint(cfg.work_dir)
    if not path or not osp.isfile(path):
        return None
    checkpoint = torch.load(path, map_location='cpu', mmap=True)
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    seed = meta.get('seed') if isinstance(meta, dict) else None
    if seed is None:
        return None
    randomness = dict(cfg.get('randomness') or {})
    randomness['seed'] = seed
    cfg.randomness = randomness
    return seed


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


#: Hooks every run of the plugin's tools has (added unless the config
#: lists them): exact resume, and refusal of checkpoints that do not fit.
PLUGIN_HOOKS = ('RandomStateHook', 'CheckpointFitHook')


def add_plugin_hooks(cfg: Config) -> None:
    """Add :data:`PLUGIN_HOOKS` to ``cfg.custom_hooks`` where missing."""
    hooks = list(cfg.get('custom_hooks') or [])
    listed = {hook.get('type') for hook in hooks if isinstance(hook, dict)}
    hooks += [dict(type=name) for name in PLUGIN_HOOKS if name not in listed]
    cfg.custom_hooks = hooks


def runner_from_cfg(cfg: Config):
    """The Runner a config asks for (``runner_type``), as MMSeg's tools;
    the MoE layers' grids are checked against their maps at the crop size
    as soon as the model is built."""
    from ..models.grid_check import check_model_grids
    add_plugin_hooks(cfg)
    if 'runner_type' in cfg:
        from mmseg.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    else:
        from mmengine.runner import Runner
        runner = Runner.from_cfg(cfg)
    check_model_grids(runner.model)
    return runner


#: Errors that mean a bad set-up when raised while a runner is built.
SETUP_ERRORS = (FileNotFoundError, ValueError, RuntimeError)
#: The Runner's set-up steps at the start of train() / val() / test().
SETUP_STEPS = frozenset({
    'build_train_loop', 'build_val_loop', 'build_test_loop',
    'build_dataloader', 'build_optim_wrapper', 'build_param_scheduler',
    '_init_model_weights', 'load_or_resume'
})


def clear_errors(work: Callable[[], object],
                 running: bool = False) -> Tuple[bool, object]:
    """Run ``work()``; a set-up error is printed as one line (``error:
    ...``) instead of a traceback, unless MOE_SEG_DEBUG is set.

    Set-up errors: a :class:`SetupError` (a failed save among them) and a
    data file that does not decode, wherever they are raised; the known
    mistakes :func:`as_setup_error` recognises (unknown config key or type,
    unreadable checkpoint); and, unless ``running``, any FileNotFoundError,
    ValueError or RuntimeError (bad config, missing file, bad option).

    Args:
        work: What to run.
        running (bool): ``work`` runs the Runner (``runner.train()``...):
            only errors raised in one of its set-up steps (``SETUP_STEPS``:
            building loops, data loaders, optimizer, schedulers; weight
            init; ``load_or_resume``, which loads ``load_from`` or resumes)
            count, so a genuine error in the middle of training keeps its
            traceback.

    Returns:
        tuple: (True, what ``work`` returned), or (False, None) after an
        error was printed.
    """
    try:
        return True, work()
    except Exception as exc:  # noqa: BLE001  (re-raised unless set-up)
        error = _setup_error(exc, running)
        if error is None or os.environ.get('MOE_SEG_DEBUG'):
            raise
        print(f'error: {error}\n(set MOE_SEG_DEBUG=1 for the traceback)',
              file=sys.stderr)
        return False, None


def _setup_error(exc: Exception, running: bool) -> Optional[Exception]:
    """The error to print as one line, or None to keep the traceback."""
    if isinstance(exc, SetupError):
        return exc
    data_file = unreadable_data_file(exc)  # met at any iteration
    if data_file is not None:
        return data_file
    if running and not _in_setup_step(exc):
        return None
    known = as_setup_error(exc)
    if known is not None:
        return known
    return exc if isinstance(exc, SETUP_ERRORS) else None


def _in_setup_step(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside one of the Runner's set-up steps."""
    return any(
        frame.f_code.co_name in SETUP_STEPS
        and frame.f_code.co_filename.replace('\\', '/').endswith(
            'mmengine/runner/runner.py')
        for frame in frames(exc.__traceback__))


def run_cli(build: Callable[[], object], action: str) -> int:
    """Build a runner and call ``runner.<action>()``; set-up errors end with
    one clear message (see :func:`clear_errors`), also those raised by the
    set-up steps the Runner runs lazily at the start of ``<action>()``
    (train loop and data sets, ``load_from`` / resume).

    Returns:
        int: The process exit code (2 after a set-up error).
    """
    built, runner = clear_errors(build)
    if not built:
        return 2
    done, _ = clear_errors(getattr(runner, action), running=True)
    if not done:
        return 2
    _close_process_group()
    return 0


def _close_process_group() -> None:
    """Leave the process group cleanly; MMEngine never destroys it, and a
    gloo group still alive at interpreter exit can abort the process."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
