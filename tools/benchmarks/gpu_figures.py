"""The GPU figures of the PatchConvMoE layer and models, in one run.

Three sections, each printed as a Markdown table when it is done (and the
whole document rewritten to ``--out``/``--json`` after every section, so a
run cut short still leaves what it measured):

1. Layer: the PatchConvMoE layer against k dense layers (the harness of
   ``tools/benchmarks/benchmark_dispatch.py``: Conv3x3 + BN + ReLU experts, top-k over
   a 3x3 grid, the 2Conv-GAP gate with spread routing, the switch loss), for
   N experts, forward (eval, no grad) and forward + backward (train), under
   bf16 autocast; also in capacity mode. Ratio = layer / (k dense layers);
   the target on a GPU is a ratio of at most 1.3.
2. Models: latency of the MoE model over its stock model, DeepLabv3+ R18 and
   ERFNet (Cityscapes configs): inference (tensor-mode forward, eval, no
   grad, batch 1, fp32) and one training step (``model.train_step`` with
   AMP: MMEngine's AmpOptimWrapper, SGD). The MoE model is timed with its
   fresh gate and with spread routing (what a balanced trained gate does).
3. torch.compile of the ERFNet street config's ``train_step`` through
   ``tools/deployment/compile_check.py``, default mode and capacity mode, each in a
   subprocess with a timeout; a failure is reported, not raised.

All timings: cells timed in interleaved rounds in one process (every ratio
from the same stretch of machine load), medians after warm-up rounds, the
clock read after ``torch.cuda.synchronize()`` on CUDA. A time budget
(``--budget``) skips what would start after it is spent.

Usage:
    python tools/benchmarks/gpu_figures.py [--device cuda|cpu] [--quick]
        [--repeats R] [--warmup W] [--budget SECONDS]
        [--out FILE.md] [--json FILE.json]
        [--skip-layer] [--skip-models] [--skip-compile]
        [--experts N ...] [--top-k K] [--capacity-factor F]
        [--no-autocast] [--amp-dtype float16|bfloat16]
        [--compile-modes default capacity] [--compile-backend B]
        [--compile-timeout SECONDS] [--threads T]

``--quick`` shrinks everything (layer 2x16x24x48, N = 4 and 8; models at
64x128, training batch 2; compile backend 'eager') for a CPU check:
``python tools/benchmarks/gpu_figures.py --device cpu --quick --repeats 1``.
"""
import argparse
import contextlib
import importlib
import json
import os
import os.path as osp
import platform
import signal
import subprocess
import sys
import time
import traceback
import warnings
from typing import Callable, Dict, Iterator, List, Optional, Sequence

# Idle OpenMP threads sleep instead of spinning (set before torch loads).
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import torch  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools', 'benchmarks')
# The plugin of this checkout, also where it is not installed.
if ROOT not in sys.path:
    sys.path.insert(1, ROOT)

MODEL_PAIRS = (
    ('DeepLabv3+ R18',
     'configs/deeplabv3plus/'
     'patchmoe_deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py',
     'configs/deeplabv3plus/'
     'deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py'),
    ('ERFNet',
     'configs/erfnet/patchmoe_erfnet_fcn_4xb4-160k_cityscapes-512x1024.py',
     'configs/erfnet/erfnet_fcn_4xb4-160k_cityscapes-512x1024.py'),
)
COMPILE_CONFIG = ('configs/erfnet/'
                  'patchmoe_erfnet_fcn_1xb4-1k_street-cityscapes-256x256.py')
LAYER_TARGET = 1.3
SPREAD_SCALE = 20.0
RESULT_MARK = 'GPU_FIGURES_COMPILE_RESULT '

# Full (GPU) and --quick (CPU check) sizes; None in the options means these.
FULL = dict(experts=[4, 8, 32], batch=8, channels=128, shape=[126, 252],
            model_shape=[512, 1024], train_batch=8, repeats=20, warmup=3)
QUICK = dict(experts=[4, 8], batch=2, channels=16, shape=[24, 48],
             model_shape=[64, 128], train_batch=2, repeats=3, warmup=1)


# ---------------------------------------------------------------- options

def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line; sizes left None are filled by :func:`settle`."""
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu',
        help='cpu or cuda[:i] (default: cuda if available, else cpu)')
    parser.add_argument('--quick', action='store_true',
                        help='tiny sizes, for a check on the CPU')
    parser.add_argument('--repeats', type=int,
                        help='timed rounds (default 20; --quick 3)')
    parser.add_argument('--warmup', type=int,
                        help='untimed rounds first, at least 1 (default 3; '
                        '--quick 1)')
    parser.add_argument('--budget', type=float, default=400.0,
                        help='seconds; what would start later is skipped, '
                        'compile checks get what is left (default 400)')
    parser.add_argument('--out', help='write the Markdown here')
    parser.add_argument('--json', help='write the figures here as JSON')
    parser.add_argument('--skip-layer', action='store_true')
    parser.add_argument('--skip-models', action='store_true')
    parser.add_argument('--skip-compile', action='store_true')
    parser.add_argument('--experts', type=int, nargs='+',
                        help='layer table: N (default 4 8 32; --quick 4 8)')
    parser.add_argument('--top-k', type=int, default=2)
    parser.add_argument('--capacity-factor', type=float, default=1.25,
                        help='capacity mode of the layer table and of the '
                        'compile check (default 1.25)')
    parser.add_argument('--no-autocast', action='store_true',
                        help='fp32 everywhere: no bf16 autocast in the '
                        'layer table, no AMP in the training step')
    parser.add_argument('--amp-dtype', choices=('float16', 'bfloat16'),
                        help='autocast dtype of the training step (default '
                        'float16 on CUDA, as MMSeg\'s --amp; bfloat16 on '
                        'the CPU)')
    parser.add_argument('--compile-modes', nargs='+',
                        choices=('default', 'capacity'),
                        default=['default', 'capacity'])
    parser.add_argument('--compile-backend',
                        help='default: inductor on CUDA, eager on the CPU or '
                        'with --quick')
    parser.add_argument('--compile-batch', type=int, default=2)
    parser.add_argument('--compile-shape', type=int, nargs=2,
                        default=[64, 64], metavar=('H', 'W'))
    parser.add_argument('--compile-timeout', type=float, default=240.0,
                        help='seconds per compile mode at most (default '
                        '240; less if the budget has less left)')
    parser.add_argument('--no-cudnn-benchmark', action='store_true',
                        help='leave cudnn.benchmark off (default on, as '
                        'the configs\' env_cfg sets it for training)')
    parser.add_argument('--threads', type=int,
                        help='CPU threads for torch (default: torch\'s)')
    parser.add_argument('--compile-worker', choices=('default', 'capacity'),
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def settle(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the sizes the options left open and check the rest."""
    sizes = QUICK if args.quick else FULL
    for key in ('experts', 'repeats', 'warmup'):
        if getattr(args, key) is None:
            setattr(args, key, sizes[key])
    for key in ('batch', 'channels', 'shape', 'model_shape', 'train_batch'):
        setattr(args, key, sizes[key])
    on_cuda = device_type(args.device) == 'cuda'
    if on_cuda and not torch.cuda.is_available():
        raise ValueError(f'--device {args.device}: CUDA is not available')
    if args.compile_backend is None:
        args.compile_backend = ('inductor' if on_cuda and not args.quick
                                else 'eager')
    if args.amp_dtype is None:
        args.amp_dtype = 'float16' if on_cuda else 'bfloat16'
    if args.repeats < 1 or args.warmup < 1:
        raise ValueError('--repeats and --warmup must be >= 1')
    if not args.capacity_factor > 0:
        raise ValueError('--capacity-factor must be > 0')
    if not 1 <= args.top_k <= min(args.experts):
        raise ValueError(f'--top-k must be from 1 to the smallest N '
                         f'({min(args.experts)})')
    return args


# ---------------------------------------------------------------- helpers

def device_type(device: str) -> str:
    """'cuda' or 'cpu' of a device string such as 'cuda:0'."""
    return torch.device(device).type


def import_tool(name: str):
    """A module of ``tools/`` (e.g. 'benchmark_dispatch')."""
    sys.path.insert(0, TOOLS)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(TOOLS)


def describe(exc: BaseException) -> str:
    """One line for an exception."""
    text = str(exc).strip().splitlines()
    return f'{type(exc).__name__}: {text[0] if text else ""}'[:300]


def quiet_logs() -> None:
    """MMEngine's logger at WARNING (no line per initialised weight)."""
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel('WARNING')


def free_memory(device: str) -> None:
    """Give cached GPU memory back between models."""
    if device_type(device) == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def under_autocast(run: Callable[[], None], device: str,
                   enabled: bool) -> Callable[[], None]:
    """``run`` inside bf16 autocast (or as it is, if not ``enabled``)."""
    def wrapped() -> None:
        with torch.autocast(device_type(device), dtype=torch.bfloat16,
                            enabled=enabled):
            run()
    return wrapped


def median_ms(cells: Dict[str, Callable[[], None]], warmup: int,
              repeats: int, device: str) -> Dict[str, float]:
    """Median milliseconds of each cell: ``warmup`` untimed rounds (the last
    one inside benchmark_dispatch's time_rounds), then ``repeats`` timed
    interleaved rounds."""
    harness = import_tool('benchmark_dispatch')
    for _ in range(warmup - 1):
        for run in cells.values():
            run()
    seconds = harness.time_rounds(cells, repeats, device)
    return {name: value * 1e3 for name, value in seconds.items()}


class Budget:
    """Seconds left of the run's time budget."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()

    def spent(self) -> bool:
        return self.left() <= 0


# ---------------------------------------------------------------- 1. layer

def layer_section(args: argparse.Namespace, budget: Budget) -> dict:
    """The layer table: for each N, both modes, dense x k / MoE / capacity."""
    import moe_seg_plugin.moe as core
    harness = import_tool('benchmark_dispatch')
    torch.manual_seed(0)
    module = harness.expert_module(args.channels).to(args.device)
    x = torch.randn(args.batch, args.channels, *args.shape,
                    device=args.device)
    rows: List[dict] = []
    notes: List[str] = []
    for experts in args.experts:
        if budget.spent():
            notes.append(f'N={experts}: skipped (time budget spent)')
            continue
        try:
            rows += layer_rows(args, harness, core, module, x, experts)
        except Exception as exc:  # noqa: BLE001  (reported, others go on)
            notes.append(f'N={experts}: failed: {describe(exc)}')
        free_memory(args.device)
    return dict(input=list(x.shape), autocast=not args.no_autocast,
                top_k=args.top_k, capacity_factor=args.capacity_factor,
                target=LAYER_TARGET, rows=rows, notes=notes)


def layer_rows(args: argparse.Namespace, harness, core, module, x,
               experts: int) -> List[dict]:
    """Forward and fwd+bwd rows of one N, all cells in the same rounds."""
    patches = args.batch * 9
    layers = {
        'moe': harness.build_layer(core, module, experts, args.top_k,
                                   patches),
        'capacity': harness.build_layer(
            core, module, experts, args.top_k, patches,
            capacity_factor=args.capacity_factor),
    }
    layers = {name: layer.to(args.device) for name, layer in layers.items()}
    rows = []
    for mode, make, train in (('forward', harness.forward_fn, False),
                              ('fwd+bwd', harness.train_fn, True)):
        cells = {'dense': harness.dense_fn(module, x, args.top_k, train)}
        cells.update({name: make(layer, x) for name, layer in layers.items()})
        cells = {name: under_autocast(run, args.device, not args.no_autocast)
                 for name, run in cells.items()}
        ms = median_ms(cells, args.warmup, args.repeats, args.device)
        rows.append(dict(
            experts=experts, top_k=args.top_k, mode=mode,
            dense_ms=ms['dense'], moe_ms=ms['moe'],
            moe_ratio=ms['moe'] / ms['dense'], capacity_ms=ms['capacity'],
            capacity_ratio=ms['capacity'] / ms['dense']))
    return rows


# ---------------------------------------------------------------- 2. models

class SpreadRouting:
    """Adds the round-robin logit offset of ``reference.spread_bias`` to the
    gate of every PatchConvMoE layer of a model while ``enabled``."""

    def __init__(self, model: torch.nn.Module) -> None:
        from moe_seg_plugin.moe import PatchConvMoE
        self.enabled = False
        self.layers = [m for m in model.modules()
                       if isinstance(m, PatchConvMoE)]
        self._biases: Dict[tuple, torch.Tensor] = {}
        for layer in self.layers:
            layer.gate.register_forward_hook(self._hook(layer.top_k))

    def _hook(self, top_k: int) -> Callable:
        def hook(module, inputs, logits):
            if not self.enabled:
                return None
            return logits + self._bias(logits, top_k)
        return hook

    def _bias(self, logits: torch.Tensor, top_k: int) -> torch.Tensor:
        from moe_seg_plugin.moe.reference import spread_bias
        key = (*logits.shape, top_k, logits.device, logits.dtype)
        if key not in self._biases:
            self._biases[key] = spread_bias(
                logits.shape[0], logits.shape[1], top_k,
                scale=SPREAD_SCALE).to(logits.device, logits.dtype)
        return self._biases[key]


def build_segmentor(config: str, shape: Sequence[int], device: str):
    """A model of ``config`` (SyncBN reverted, weights initialised, input
    size ``shape``) on ``device``, via compile_check's build_model."""
    from moe_seg_plugin.engine import load_config
    tool = import_tool('compile_check')
    cfg = load_config(osp.join(ROOT, config))
    return tool.build_model(cfg, list(shape), None).to(device)


def make_optim_wrapper(model: torch.nn.Module, args: argparse.Namespace):
    """SGD as MMSeg's schedules set it, in MMEngine's AmpOptimWrapper on
    CUDA; on the CPU (where AmpOptimWrapper refuses to run) an OptimWrapper
    whose forward runs under autocast, as AmpOptimWrapper's does."""
    from mmengine.optim import AmpOptimWrapper, OptimWrapper
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,
                                weight_decay=5e-4)
    if args.no_autocast:
        return OptimWrapper(optimizer=optimizer)
    if device_type(args.device) == 'cuda':
        return AmpOptimWrapper(optimizer=optimizer, dtype=args.amp_dtype,
                               loss_scale='dynamic')
    return cpu_amp_wrapper(optimizer, getattr(torch, args.amp_dtype))


def cpu_amp_wrapper(optimizer, dtype: torch.dtype):
    """An OptimWrapper whose ``optim_context`` adds CPU autocast."""
    from mmengine.optim import OptimWrapper

    class CpuAmpOptimWrapper(OptimWrapper):

        @contextlib.contextmanager
        def optim_context(self, model) -> Iterator[None]:
            with super().optim_context(model):
                with torch.autocast('cpu', dtype=dtype):
                    yield

    return CpuAmpOptimWrapper(optimizer=optimizer)


def batch_on(batch: dict, device: str) -> dict:
    """compile_check's synthetic batch moved to ``device`` once, so the
    timed steps copy nothing from the host."""
    return dict(inputs=[image.to(device) for image in batch['inputs']],
                data_samples=[s.to(device) for s in batch['data_samples']])


def models_section(args: argparse.Namespace, budget: Budget) -> dict:
    """The model table: each pair, inference and training step."""
    rows: List[dict] = []
    notes: List[str] = []
    for label, moe_config, stock_config in MODEL_PAIRS:
        if budget.spent():
            notes.append(f'{label}: skipped (time budget spent)')
            continue
        try:
            rows += model_rows(args, budget, label, moe_config,
                               stock_config, notes)
        except Exception as exc:  # noqa: BLE001  (reported, others go on)
            traceback.print_exc()
            notes.append(f'{label}: failed: {describe(exc)}')
        free_memory(args.device)
    return dict(shape=list(args.model_shape), train_batch=args.train_batch,
                amp=None if args.no_autocast else args.amp_dtype,
                rows=rows, notes=notes)


def model_rows(args: argparse.Namespace, budget: Budget, label: str,
               moe_config: str, stock_config: str,
               notes: List[str]) -> List[dict]:
    """Inference and training rows of one MoE / stock pair."""
    models = {'stock': build_segmentor(stock_config, args.model_shape,
                                       args.device),
              'moe': build_segmentor(moe_config, args.model_shape,
                                     args.device)}
    routing = SpreadRouting(models['moe'])
    if not routing.layers:
        raise ValueError(f'{moe_config} has no PatchConvMoE layer')
    rows = []
    for timed, time_it in (('inference', inference_ms),
                           ('train step', train_step_ms)):
        if budget.spent():
            notes.append(f'{label} {timed}: skipped (time budget spent)')
            continue
        ms, batch = time_it(args, models, routing)
        rows.append(dict(
            model=label, timed=timed,
            input=f'{batch}x3x{args.model_shape[0]}x{args.model_shape[1]}',
            stock_ms=ms['stock'], moe_ms=ms['moe'],
            ratio=ms['moe'] / ms['stock'], spread_ms=ms['moe spread'],
            spread_ratio=ms['moe spread'] / ms['stock'],
            moe_config=moe_config, stock_config=stock_config))
    return rows


def inference_ms(args: argparse.Namespace, models: dict,
                 routing: SpreadRouting) -> tuple:
    """Tensor-mode forward, eval, no grad, batch 1, fp32."""
    x = torch.randn(1, 3, *args.model_shape, device=args.device)

    def forward(model, spread: bool) -> Callable[[], None]:
        def run() -> None:
            routing.enabled = spread
            model.eval()
            with torch.no_grad():
                model(x, mode='tensor')
        return run

    cells = {'stock': forward(models['stock'], False),
             'moe': forward(models['moe'], False),
             'moe spread': forward(models['moe'], True)}
    return median_ms(cells, args.warmup, args.repeats, args.device), 1


def train_step_ms(args: argparse.Namespace, models: dict,
                  routing: SpreadRouting) -> tuple:
    """``model.train_step`` (preprocessing, forward, losses, backward, SGD
    step) on a synthetic batch, with AMP."""
    tool = import_tool('compile_check')
    num_classes = models['moe'].decode_head.num_classes
    batch = batch_on(tool.synthetic_batch(
        args.train_batch, args.model_shape, num_classes), args.device)
    wrappers = {name: make_optim_wrapper(model, args)
                for name, model in models.items()}

    def step(name: str, spread: bool) -> Callable[[], None]:
        def run() -> None:
            routing.enabled = spread
            models[name].train()
            models[name].train_step(batch, wrappers[name])
        return run

    cells = {'stock': step('stock', False), 'moe': step('moe', False),
             'moe spread': step('moe', True)}
    try:
        return (median_ms(cells, args.warmup, args.repeats, args.device),
                args.train_batch)
    finally:
        routing.enabled = False


# ---------------------------------------------------------------- 3. compile

def compile_section(args: argparse.Namespace, budget: Budget) -> dict:
    """compile_check in a subprocess per mode, within the budget."""
    rows: List[dict] = []
    modes = list(args.compile_modes)
    for index, mode in enumerate(modes):
        timeout = min(args.compile_timeout,
                      budget.left() / (len(modes) - index))
        if timeout < 5:
            rows.append(dict(mode=mode, backend=args.compile_backend,
                             status='skipped (time budget spent)'))
            continue
        rows.append(compile_in_subprocess(args, mode, timeout))
    return dict(config=COMPILE_CONFIG, backend=args.compile_backend,
                batch=args.compile_batch, shape=list(args.compile_shape),
                rows=rows)


def compile_in_subprocess(args: argparse.Namespace, mode: str,
                          timeout: float) -> dict:
    """One compile mode run by this script's worker; its row, with the
    status 'ok', 'failed: ...' or 'timeout after N s'."""
    command = [sys.executable, osp.abspath(__file__),
               '--compile-worker', mode, '--device', args.device,
               '--compile-backend', args.compile_backend,
               '--compile-batch', str(args.compile_batch),
               '--compile-shape', *map(str, args.compile_shape),
               '--capacity-factor', str(args.capacity_factor)]
    if args.threads:
        command += ['--threads', str(args.threads)]
    row = dict(mode=mode, backend=args.compile_backend)
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        row.update(status=f'timeout after {timeout:.0f} s',
                   seconds=time.perf_counter() - start)
        return row
    row['seconds'] = time.perf_counter() - start
    found = [line[len(RESULT_MARK):] for line in out.splitlines()
             if line.startswith(RESULT_MARK)]
    if not found:
        last = (err.strip().splitlines() or ['(no output)'])[-1]
        row['status'] = f'failed (exit {process.returncode}): {last[:300]}'
        return row
    answer = json.loads(found[-1])
    if not answer['ok']:
        row['status'] = f"failed: {answer['error']}"
        return row
    row.update(status='ok', report=answer['report'],
               **answer['result']['model'])
    return row


def compile_worker(args: argparse.Namespace) -> int:
    """The worker: compile_check's check on ``args.device`` for one mode;
    prints its answer as one JSON line after RESULT_MARK."""
    try:
        result = compile_on_device(args)
        report = import_tool('compile_check').report(result)
        answer = dict(ok=True, result=result, report=report)
    except Exception as exc:  # noqa: BLE001  (the parent reports it)
        traceback.print_exc()
        answer = dict(ok=False, error=describe(exc))
    print(RESULT_MARK + json.dumps(answer), flush=True)
    return 0


def compile_on_device(args: argparse.Namespace) -> dict:
    """compile_check's ``run`` (without the stock model) with the model on
    ``args.device``; its ``run`` builds on the CPU only."""
    from moe_seg_plugin.engine import load_config
    tool = import_tool('compile_check')
    options = [osp.join(ROOT, COMPILE_CONFIG),
               '--backend', args.compile_backend,
               '--batch', str(args.compile_batch),
               '--shape', *map(str, args.compile_shape)]
    if args.compile_worker == 'capacity':
        options += ['--capacity-factor', str(args.capacity_factor)]
    check_args = tool.parse_args(options)
    cfg = load_config(check_args.config)
    model = tool.build_model(cfg, check_args.shape,
                             check_args.capacity_factor).to(args.device)
    return dict(config=COMPILE_CONFIG, backend=check_args.backend,
                capacity_factor=check_args.capacity_factor,
                model=tool.check(model, check_args))


# ---------------------------------------------------------------- report

def environment(args: argparse.Namespace) -> dict:
    """Device name, versions and the checkout's commit."""
    on_cuda = device_type(args.device) == 'cuda'
    return dict(
        device=args.device,
        device_name=(torch.cuda.get_device_name(torch.device(args.device))
                     if on_cuda else 'cpu'),
        torch=torch.__version__, cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if on_cuda else None,
        python=platform.python_version(), threads=torch.get_num_threads(),
        cudnn_benchmark=torch.backends.cudnn.benchmark,
        commit=git_commit(), date=time.strftime('%Y-%m-%d %H:%M:%S'))


def git_commit() -> Optional[str]:
    """The checkout's short commit, '+' if it has local changes."""
    try:
        commit = subprocess.run(
            ['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, text=True,
            capture_output=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(
            ['git', 'status', '--porcelain', '--untracked-files=no'],
            cwd=ROOT, text=True, capture_output=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ('+' if dirty.strip() else '')


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines)


def render_header(figures: dict) -> str:
    env, settings = figures['environment'], figures['settings']
    cuda = (f", CUDA {env['cuda']}, cuDNN {env['cudnn']} (benchmark "
            f"{'on' if env['cudnn_benchmark'] else 'off'})"
            if env['cudnn'] else '')
    return '\n'.join([
        '# PatchConvMoE GPU figures', '',
        f"- device: {env['device_name']} ({env['device']}), torch "
        f"{env['torch']}{cuda}, Python {env['python']}, "
        f"{env['threads']} CPU threads",
        f"- checkout: {env['commit'] or 'unknown'}; {env['date']}",
        f"- timing: {settings['warmup']} warm-up + {settings['repeats']} "
        'timed rounds, cells interleaved, medians'
        + (' (--quick sizes)' if settings['quick'] else '')])


def render_layer(data: dict) -> str:
    shape = 'x'.join(map(str, data['input']))
    factor = f"{data['capacity_factor']:g}"
    precision = 'bf16 autocast' if data['autocast'] else 'fp32'
    rows = [[str(r['experts']), str(r['top_k']), r['mode'],
             f"{r['dense_ms']:.2f}", f"{r['moe_ms']:.2f}",
             f"{r['moe_ratio']:.3f}", f"{r['capacity_ms']:.2f}",
             f"{r['capacity_ratio']:.3f}",
             ' / '.join('yes' if r[key] <= data['target'] else 'no'
                        for key in ('moe_ratio', 'capacity_ratio'))]
            for r in data['rows']]
    header = ['N', 'k', 'mode', 'dense x k (ms)', 'MoE (ms)', 'MoE ratio',
              f'capacity {factor} (ms)', 'capacity ratio',
              f"ratio <= {data['target']:g} (MoE / capacity)"]
    return '\n'.join([
        '## 1. PatchConvMoE layer against k dense layers', '',
        f'Input {shape}; experts Conv3x3 + BN + ReLU; top-{data["top_k"]} '
        'over a 3x3 grid, 2Conv-GAP gate with spread routing, switch loss; '
        f'{precision}. forward: eval, no grad; fwd+bwd: train. ratio = '
        f"layer / {data['top_k']} dense layers; target on a GPU: ratio <= "
        f"{data['target']:g}.", '',
        table(header, rows)] + notes(data['notes']))


def render_models(data: dict) -> str:
    amp = (f"AMP ({data['amp']})" if data['amp'] else 'fp32')
    rows = [[r['model'], r['timed'], r['input'], f"{r['stock_ms']:.2f}",
             f"{r['moe_ms']:.2f}", f"{r['ratio']:.3f}",
             f"{r['spread_ms']:.2f}", f"{r['spread_ratio']:.3f}"]
            for r in data['rows']]
    header = ['model', 'timed', 'input', 'stock (ms)', 'MoE (ms)',
              'ratio MoE/stock', 'MoE spread (ms)', 'ratio spread/stock']
    return '\n'.join([
        '## 2. Model latency, MoE over stock', '',
        'inference: tensor-mode forward, eval, no grad, batch 1, fp32. '
        'train step: `model.train_step` (preprocessing, forward, losses, '
        f"backward, SGD step), batch {data['train_batch']}, {amp}. "
        'MoE: its fresh gate (which tends to send every patch to the same '
        'k experts); MoE spread: gate logits offset round-robin so patches '
        'spread over all experts, as a balanced trained gate\'s do. '
        'Cityscapes configs (MoE / stock):', '',
        *[f'- {label}: `{moe}` / `{stock}`'
          for label, moe, stock in MODEL_PAIRS], '',
        table(header, rows)] + notes(data['notes']))


def render_compile(data: dict) -> str:
    rows, reports = [], []
    for r in data['rows']:
        ok = r['status'] == 'ok'
        cells = ([str(r['graphs']), str(r['graph_breaks']),
                  str(r['break_sites']), str(r['plugin_sites']),
                  f"{r['loss_compiled']:.4f}", f"{r['loss_eager']:.4f}",
                  f"{r['seconds_first_step']:.1f}"] if ok else ['-'] * 7)
        rows.append([r['mode'], r['backend'], r['status'], *cells,
                     f"{r['seconds']:.0f}" if 'seconds' in r else '-'])
        if ok:
            reports.append(r['report'])
    header = ['MoE mode', 'backend', 'status', 'graphs', 'graph breaks',
              'break places', 'in moe_seg_plugin', 'loss compiled',
              'loss eager', 'first compiled step (s)', 'whole check (s)']
    shape = 'x'.join(map(str, data['shape']))
    lines = ['## 3. torch.compile of train_step', '',
             f"`tools/deployment/compile_check.py` on `{data['config']}`, batch "
             f"{data['batch']}, {shape}, each mode in a subprocess.", '',
             table(header, rows)]
    if reports:
        lines += ['', '```', *reports, '```']
    return '\n'.join(lines)


def render_sections(sections: List[dict]) -> str:
    rows = [[s['name'], f"{s['seconds']:.1f}", s['status']]
            for s in sections]
    return '\n'.join(['## Sections', '',
                      table(['section', 'seconds', 'status'], rows)])


def notes(lines: List[str]) -> List[str]:
    return ['', *[f'- {line}' for line in lines]] if lines else []


RENDERERS = dict(layer=render_layer, models=render_models,
                 compile=render_compile)


def render_document(figures: dict) -> str:
    parts = [render_header(figures)]
    parts += [RENDERERS[s['name']](figures[s['name']])
              for s in figures['sections'] if figures.get(s['name'])]
    parts.append(render_sections(figures['sections']))
    return '\n\n'.join(parts) + '\n'


def write_outputs(args: argparse.Namespace, figures: dict) -> None:
    """The document so far to --out, the figures to --json."""
    for path, text in ((args.out, lambda: render_document(figures)),
                       (args.json, lambda: json.dumps(figures, indent=2))):
        if path:
            os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
            with open(path, 'w') as file:
                file.write(text())


# ---------------------------------------------------------------- main

def run_section(name: str, work: Callable[[], dict], figures: dict,
                budget: Budget, args: argparse.Namespace) -> None:
    """Run one section (unless the budget is spent), print its table and
    the time it took, and write the outputs so far."""
    start = time.perf_counter()
    status, data = 'ok', None
    if budget.spent():
        status = 'skipped (time budget spent)'
    else:
        try:
            data = work()
            status = section_status(data)
        except Exception as exc:  # noqa: BLE001  (reported, others go on)
            traceback.print_exc()
            status = f'failed: {describe(exc)}'
    seconds = time.perf_counter() - start
    figures[name] = data
    figures['sections'].append(dict(name=name, seconds=seconds,
                                    status=status))
    if data:
        print(RENDERERS[name](data), end='\n\n')
    print(f'[{name}] {status}, {seconds:.1f} s; elapsed '
          f'{budget.elapsed():.1f} s of the {budget.seconds:.0f} s budget',
          end='\n\n', flush=True)
    write_outputs(args, figures)


def section_status(data: dict) -> str:
    """'ok', or how many parts of a section failed or were skipped."""
    problems = len(data.get('notes', []))
    problems += sum(row.get('status', 'ok') != 'ok'
                    for row in data.get('rows', []))
    return 'ok' if not problems else f'{problems} part(s) failed or skipped'


def main(argv: Optional[Sequence[str]] = None) -> int:
    warnings.filterwarnings('ignore')
    args = settle(parse_args(argv))
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
    import moe_seg_plugin  # noqa: F401  (registers; mmcv.ops stand-in)
    quiet_logs()
    if args.compile_worker:
        return compile_worker(args)
    budget = Budget(args.budget)
    figures = dict(environment=environment(args), sections=[],
                   settings=dict(quick=args.quick, repeats=args.repeats,
                                 warmup=args.warmup, budget=args.budget))
    print(render_header(figures), end='\n\n', flush=True)
    sections = (('layer', args.skip_layer, layer_section),
                ('models', args.skip_models, models_section),
                ('compile', args.skip_compile, compile_section))
    for name, skip, section in sections:
        if not skip:
            run_section(name, lambda: section(args, budget), figures,
                        budget, args)
    print(render_sections(figures['sections']), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
