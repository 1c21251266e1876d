"""One run of a sweep: train and test through MMEngine's Runner as
tools/train.py and tools/test.py do, measure the model, write its row.

A run's work dir is ``<sweep_dir>/runs/<run_id>``. A run whose row says
'done' is skipped; any other run (a row.json that cannot be read
included) trains with ``resume=True``, so a killed run continues from its
last checkpoint. A run that fails leaves a row with
status 'failed', its error in one line and the traceback in ``error.log``.
"""
import copy
import json
import os
import os.path as osp
import time
import traceback
from typing import Dict, Optional

from mmengine.config import Config

from ..engine.errors import SetupError, as_setup_error
from .files import write_json
from .spec import ROW_FILE, RUNS_DIR, BrokenRow, RunSpec, read_row

LATENCY_WARMUP = 1
LATENCY_REPEATS = 5
#: Keys of a MoE layer's final routing summary kept in a row.
ROUTING_KEYS = ('usage_entropy', 'dominant_share', 'num_dead',
                'importance_cv2')


def row_path(spec: RunSpec, sweep_dir: str) -> str:
    return osp.join(spec.work_dir(sweep_dir), ROW_FILE)


def finished_row(spec: RunSpec, sweep_dir: str) -> Optional[dict]:
    """The run's row if it finished ('done'), else None.

    A row.json that cannot be read (see :func:`broken_row`) is not a
    finished run: the run runs again, resuming from its last checkpoint,
    and writes a new row.
    """
    try:
        row = read_row(row_path(spec, sweep_dir))
    except BrokenRow:
        return None
    return row if row and row.get('status') == 'done' else None


def broken_row(spec: RunSpec, sweep_dir: str) -> Optional[BrokenRow]:
    """Why the run's row.json cannot be read, or None if it can (or there
    is none)."""
    try:
        read_row(row_path(spec, sweep_dir))
    except BrokenRow as exc:
        return exc
    return None


def last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint MMEngine saved last in ``work_dir`` (None if none)."""
    marker = osp.join(work_dir, 'last_checkpoint')
    try:
        with open(marker, encoding='utf-8') as file:
            path = file.read().strip()
    except OSError:
        return None
    return path if path and osp.isfile(path) else None


def train_config(spec: RunSpec, sweep_dir: str,
                 cfg_options: Optional[dict] = None,
                 launcher: str = 'none') -> Config:
    """The run's training config: the family's config for the run, its
    work dir, resumed from its own last checkpoint if there is one, else
    started from the checkpoint of the run it needs (upcycling)."""
    from .family import run_config
    cfg = run_config(spec, cfg_options)
    work_dir = spec.work_dir(sweep_dir)
    cfg.work_dir = work_dir
    cfg.launcher = launcher
    hooks = list(cfg.get('custom_hooks') or [])
    if spec.baseline:  # no MoE layer to take statistics of
        hooks = [h for h in hooks if h.get('type') != 'RoutingStatsHook']
    cfg.custom_hooks = hooks + [dict(type='ProgressFileHook')]
    if last_checkpoint(work_dir) is None and spec.needs:
        source = last_checkpoint(
            osp.join(sweep_dir, RUNS_DIR, spec.needs))
        if source is None:
            raise SetupError(f'run {spec.run_id} starts from the checkpoint '
                             f'of run {spec.needs}, which has none')
        cfg.load_from = source
        cfg.resume = False
    else:
        cfg.load_from = None
        cfg.resume = True  # MMEngine finds the last checkpoint, if any
    return cfg


def tested_config(cfg: Config, checkpoint: str) -> Config:
    """The config tools/test.py makes of a trained run: the checkpoint
    loaded, training parts gone, per-class IoU kept."""
    from ..evaluation.fixed_expert import use_per_class_metric
    cfg = copy.deepcopy(cfg)
    cfg.load_from = checkpoint
    cfg.resume = False
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper',
                'param_scheduler'):
        cfg[key] = None
    use_per_class_metric(cfg)
    return cfg


def crop_size(cfg: Config):
    """(H, W) the model is measured at: its data preprocessor's size."""
    size = cfg.model.get('data_preprocessor', {}).get('size')
    if not size:
        raise SetupError('model.data_preprocessor.size: needed to measure '
                         'FLOPs and latency at the crop size; set it')
    return tuple(size)


def measure(cfg: Config, checkpoint: str, baseline: bool) -> dict:
    """Parameters, GFLOPs (MoE layers as they run) and latency against the
    stock model, timed alternately in one process."""
    import torch

    from ..evaluation.flops import analyze_model, inference_model
    from ..evaluation.latency import compare_latency, latency_ratio
    from ..models.stock import stock_config
    shape = crop_size(cfg)
    model = inference_model(cfg, checkpoint)
    complexity = analyze_model(model, shape)
    out = dict(params=complexity.params, gflops=complexity.flops / 1e9)
    x = torch.randn(1, 3, *shape)
    runs = {'model': lambda: model(x, mode='tensor')}
    if not baseline:
        stock = inference_model(stock_config(cfg))
        runs['stock'] = lambda: stock(x, mode='tensor')
    with torch.no_grad():
        times = compare_latency(runs, LATENCY_WARMUP, LATENCY_REPEATS,
                                device='cpu')
    out['latency_ms'] = times['model']['median_ms']
    if baseline:
        out['stock_latency_ms'] = out['latency_ms']
        out['latency_ratio'] = 1.0
    else:
        out['stock_latency_ms'] = times['stock']['median_ms']
        out['latency_ratio'] = latency_ratio(times, 'model',
                                             'stock')['paired_ratio']
    return out


def final_routing(work_dir: str) -> Dict[str, dict]:
    """Per MoE layer, the routing statistics of the run's last test (else
    validation) in its routing_stats.json."""
    path = osp.join(work_dir, 'routing_stats.json')
    last: Dict[str, dict] = {}
    try:
        with open(path, encoding='utf-8') as file:
            lines = file.readlines()
    except OSError:
        return {}
    for mode in ('test', 'val'):
        for line in reversed(lines):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get('mode') == mode:
                last = entry['layers']
                break
        if last:
            break
    return {
        layer: {key: summary.get(key) for key in ROUTING_KEYS}
        for layer, summary in last.items()
    }


def _number(value) -> Optional[float]:
    """A metric as a plain float (MMSeg gives numpy scalars)."""
    return None if value is None else float(value)


def base_row(spec: RunSpec) -> dict:
    return dict(run_id=spec.run_id, family=spec.family, arch=spec.arch,
                value=spec.value, seed=spec.seed, baseline=spec.baseline,
                config=spec.config, status='failed', error=None, iters=None,
                mIoU=None, aAcc=None, IoU={}, params=None, gflops=None,
                latency_ms=None, stock_latency_ms=None, latency_ratio=None,
                routing={}, routing_stats=None)


def write_row(spec: RunSpec, sweep_dir: str, row: dict) -> None:
    """Write the run's row.json whole or not at all (see
    :func:`.files.write_json`)."""
    path = row_path(spec, sweep_dir)
    os.makedirs(osp.dirname(path), exist_ok=True)
    write_json(path, row)


def record_failure(spec: RunSpec, sweep_dir: str, error: str) -> dict:
    """Write and return a failed row for a run that ended without one
    (its worker died, its dependency failed, its Slurm job ended)."""
    row = base_row(spec)
    row['error'] = error
    write_row(spec, sweep_dir, row)
    return row


def train_and_test(spec: RunSpec, sweep_dir: str,
                   cfg_options: Optional[dict] = None,
                   launcher: str = 'none') -> dict:
    """Train the run (resuming if it was killed), test its checkpoint and
    measure it; returns its row (not yet written)."""
    from mmengine.dist import is_main_process

    from ..engine.run_setup import check_data_roots, runner_from_cfg
    clock = time.perf_counter
    start = clock()
    cfg = train_config(spec, sweep_dir, cfg_options, launcher)
    check_data_roots(cfg, ['train_dataloader', 'val_dataloader',
                           'test_dataloader'])
    runner = runner_from_cfg(cfg)
    built = clock()
    runner.train()
    trained = clock()
    checkpoint = last_checkpoint(cfg.work_dir)
    if checkpoint is None:
        raise SetupError(f'run {spec.run_id} saved no checkpoint; keep '
                         'default_hooks.checkpoint on')
    tester = runner_from_cfg(tested_config(cfg, checkpoint))
    metrics = tester.test()
    tested = clock()
    row = base_row(spec)
    # Where a run's time goes (the sweep adds the wall time of its
    # process); the sweep's own overhead is what is not train or test.
    row['seconds'] = dict(setup=built - start, train=trained - built,
                          test=tested - trained)
    row.update(status='done', iters=runner.iter,
               mIoU=_number(metrics.get('mIoU')),
               aAcc=_number(metrics.get('aAcc')),
               IoU={name[len('IoU.'):]: _number(value)
                    for name, value in metrics.items()
                    if name.startswith('IoU.')})
    if is_main_process():
        measured = clock()
        row.update(measure(cfg, checkpoint, spec.baseline))
        row['seconds']['measure'] = clock() - measured
        if not spec.baseline:
            row['routing'] = final_routing(cfg.work_dir)
            row['routing_stats'] = osp.join(RUNS_DIR, spec.run_id,
                                            'routing_stats.json')
    return row


def run_one(spec: RunSpec, sweep_dir: str,
            cfg_options: Optional[dict] = None,
            launcher: str = 'none') -> dict:
    """Run ``spec`` unless it finished before; record its row.

    Never raises for a failed run: the row says 'failed' with the error's
    first line, and ``error.log`` in the run's work dir holds the
    traceback.

    Returns:
        dict: The row.
    """
    from mmengine.dist import is_main_process
    done = finished_row(spec, sweep_dir)
    if done is not None:
        return done
    work_dir = spec.work_dir(sweep_dir)
    os.makedirs(work_dir, exist_ok=True)
    try:
        row = train_and_test(spec, sweep_dir, cfg_options, launcher)
    except Exception as exc:  # noqa: BLE001  (recorded, the sweep goes on)
        row = base_row(spec)
        known = as_setup_error(exc) or exc  # the tools' one-line wording
        message = str(known).strip().splitlines()
        row['error'] = (f'{type(known).__name__}: '
                        f'{message[0] if message else ""}')
        with open(osp.join(work_dir, 'error.log'), 'w',
                  encoding='utf-8') as file:
            file.write(traceback.format_exc())
    if is_main_process():
        write_row(spec, sweep_dir, row)
    return row
