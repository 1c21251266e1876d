"""Latency of the PatchConvMoE layer alone, against the dense layer it
replaces and against the naive reference (every expert on every patch).

For each shipped architecture the replaced layer is taken from its
Cityscapes PatchMoE config (the real module, its real input size), and
timed three ways, forward (eval, no grad) and forward + backward (train
mode, the input requiring grad as inside a model): ``dense`` (the replaced
module on the whole map), ``moe`` (PatchConvMoE with N experts and top-k
routing, per dispatch and expert scope) and ``naive``
(:func:`~..moe.reference.naive_forward`, whose cost does not depend on k).
Routing is spread over all experts (:func:`~.spread.spread_routing`); all
cells of an architecture and mode are timed in the same interleaved rounds
(:func:`~.latency.compare_latency`). :mod:`.layer_tables` prints them.
"""
import copy
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .latency import compare_latency, median_ms
from .spread import spread_routing

ARCH_CONFIGS = {
    'deeplabv3plus': 'configs/deeplabv3plus/patchmoe_deeplabv3plus_r18-d8_'
                     '4xb2-80k_cityscapes-512x1024.py',
    'pspnet': 'configs/pspnet/patchmoe_pspnet_r18-d8_4xb2-80k_'
              'cityscapes-512x1024.py',
    'lraspp': 'configs/lraspp/patchmoe_lraspp_m-v3-d8_4xb4-160k_'
              'cityscapes-512x1024.py',
    'unet': 'configs/unet/patchmoe_unet-s5-d16_fcn_4xb4-160k_'
            'cityscapes-512x1024.py',
    'erfnet': 'configs/erfnet/patchmoe_erfnet_fcn_4xb4-160k_'
              'cityscapes-512x1024.py',
    'enet': 'configs/enet/patchmoe_enet_4xb4-160k_cityscapes-512x1024.py',
}
MODES = ('forward', 'backward')
DISPATCHES = ('auto', 'views', 'indexed')
#: Expert formulations: module experts, merged conv experts, or low-rank
#: ones as 'lowrank<R>'.
SCOPES = ('module', 'conv')
LOW_RANK = 'lowrank'
#: Settings of the config's MoE layer that the sweep sets itself.
SWEPT = ('target', 'num_experts', 'top_k', 'balance_loss', 'noisy_gating')
#: A naive call is estimated at this many dense calls per expert.
NAIVE_MARGIN = 1.2
REPO = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
Cell = Tuple[Callable[[], None], Callable[[], None]]  # (run, setup)


@dataclass
class LayerSweep:
    """What to time: architectures, N, k, modes, dispatches, scopes, and
    how (rounds, batch, image size, the naive cells' budget, device)."""
    archs: List[str] = field(default_factory=lambda: list(ARCH_CONFIGS))
    experts: List[int] = field(default_factory=lambda: [2, 4, 8, 16, 32])
    top_k: List[int] = field(default_factory=lambda: [1, 2])
    modes: List[str] = field(default_factory=lambda: list(MODES))
    repeats: int = 3
    batch: int = 1
    shape: List[int] = field(default_factory=lambda: [512, 1024])
    naive_budget: float = 8.0
    naive_always: List[int] = field(default_factory=lambda: [8])
    dispatches: List[str] = field(default_factory=lambda: ['auto'])
    scopes: List[str] = field(default_factory=lambda: ['module'])
    device: str = 'cpu'

    def check(self) -> None:
        """Raise ValueError naming the first bad setting (as its option)."""
        _known('--archs', self.archs, ARCH_CONFIGS)
        _known('--dispatches', self.dispatches, DISPATCHES)
        bad = [s for s in self.scopes
               if s not in SCOPES and scope_rank(s) is None]
        if bad:
            raise ValueError(f'--scopes: unknown {bad}; choose from '
                             f"{list(SCOPES)} or '{LOW_RANK}<R>' (R >= 1)")
        _known('--modes', self.modes, MODES)
        for name in ('experts', 'top_k'):
            values = getattr(self, name)
            if min(values) < 1:
                raise ValueError(f'--{name.replace("_", "-")}: all values '
                                 f'must be >= 1, got {values}')
        if max(self.top_k) > max(self.experts):
            raise ValueError(f'--top-k: {max(self.top_k)} exceeds every '
                             f'--experts value {self.experts}')
        for name in ('repeats', 'batch'):
            if getattr(self, name) < 1:
                raise ValueError(f'--{name}: must be >= 1, got '
                                 f'{getattr(self, name)}')
        if min(self.shape) < 1:
            raise ValueError(f'--shape: sizes must be positive, got '
                             f'{self.shape}')


def _known(option: str, values: Sequence[str], known: Sequence[str]) -> None:
    """Raise ValueError if a value of ``option`` is not in ``known``."""
    bad = [value for value in values if value not in known]
    if bad:
        raise ValueError(f'{option}: unknown {bad}; choose from '
                         f'{list(known)}')


def scope_rank(scope: str) -> Optional[int]:
    """R of a 'lowrank<R>' scope, None for any other name."""
    digits = scope[len(LOW_RANK):]
    if scope.startswith(LOW_RANK) and digits.isdigit() and int(digits) > 0:
        return int(digits)
    return None


def scope_settings(scope: str) -> dict:
    """The PatchConvMoE settings of a ``--scopes`` name.

    Args:
        scope (str): 'module', 'conv' or 'lowrank<R>'.

    Returns:
        dict: ``expert_scope`` (and ``expert_rank`` for low rank).
    """
    rank = scope_rank(scope)
    if rank is not None:
        return dict(expert_scope='conv', expert_rank=rank)
    return dict(expert_scope=scope)


def replaced_layer(arch: str, shape: Sequence[int], device: str
                   ) -> Tuple[str, nn.Module, Tuple[int, ...], dict]:
    """The shipped MoE layer of ``arch``.

    Args:
        arch (str): A key of :data:`ARCH_CONFIGS`.
        shape (tuple[int, int]): The model's input size (H, W).
        device (str): Where the model is built.

    Returns:
        tuple: The layer's path, the dense module it replaces, the shape
        of its input (1, C, h, w) for a batch-1 image, and its PatchConvMoE
        settings from the config (the swept ones left out).
    """
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from ..engine.run_setup import load_config
    from ..models.injection import moe_layers

    cfg = load_config(os.path.join(REPO, ARCH_CONFIGS[arch]))
    init_default_scope('mmseg')
    model = revert_sync_batchnorm(MODELS.build(cfg.model)).to(device).eval()
    layers = moe_layers(model)
    if len(layers) != 1:
        raise RuntimeError(f'{arch}: expected one PatchConvMoE layer in '
                           f'{ARCH_CONFIGS[arch]}, found {list(layers)}')
    (path, layer), = layers.items()
    seen = input_shape(model, layer, shape, device)
    settings = dict(cfg.model.decode_head.get('moe', {}))
    settings = {k: v for k, v in settings.items() if k not in SWEPT}
    return path, copy.deepcopy(layer.experts[0]), seen, settings


class _Seen(Exception):
    """Stops the model's forward pass once the layer's input is known."""


def input_shape(model: nn.Module, layer: nn.Module, shape: Sequence[int],
                device: str) -> Tuple[int, ...]:
    """The shape of ``layer``'s input in ``model``'s tensor forward of a
    zero image (1, 3, H, W); the forward stops there."""
    seen = {}

    def stop(_, args):
        seen['shape'] = tuple(args[0].shape)
        raise _Seen

    handle = layer.register_forward_pre_hook(stop)
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, *shape, device=device), mode='tensor')
    except _Seen:
        pass
    finally:
        handle.remove()
    if 'shape' not in seen:
        raise RuntimeError('the MoE layer did not run in a tensor-mode '
                           'forward pass')
    return seen['shape']


def build_layers(dense: nn.Module, sweep: LayerSweep, settings: dict
                 ) -> Tuple[Dict[Tuple[str, int], nn.Module], dict]:
    """One PatchConvMoE per scope and N (k is set per cell).

    Returns:
        tuple: {(scope, N): layer} on the sweep's device, and {scope: why}
        for the scopes the dense module cannot take.
    """
    from ..moe import PatchConvMoE
    layers, unsupported = {}, {}
    for scope in sweep.scopes:
        for n in sweep.experts:
            try:
                layer = PatchConvMoE(dense, num_experts=n, top_k=1,
                                     **settings, **scope_settings(scope))
            except ValueError as error:  # the conv scope: one line why not
                unsupported[scope] = str(error)
                break
            layers[scope, n] = layer.to(sweep.device)
    return layers, unsupported


def timed_cell(run: Callable[[], Tensor], module: nn.Module, x: Tensor,
               train: bool, top_k: Optional[int] = None,
               dispatch: str = 'auto') -> Cell:
    """A cell for :func:`~.latency.compare_latency`: ``run()`` (with
    ``train``: and the backward of a random gradient), and its untimed
    setup (gradients cleared; the layer's k and dispatch set).

    Args:
        run (callable): The forward, returning (B, C, H, W).
        module (nn.Module): What ``run`` calls (a layer or dense module).
        x (Tensor): The input (B, C, H, W); requires grad with ``train``.
        train (bool): Forward + backward instead of a no-grad forward.
        top_k (int, optional): The MoE layer's k for this cell.
        dispatch (str): The MoE layer's dispatch for this cell.

    Returns:
        tuple: (run, setup).
    """
    grad: List[Tensor] = []

    def setup() -> None:
        if top_k is not None:
            module.top_k, module.dispatch = top_k, dispatch
        if train:
            module.zero_grad(set_to_none=True)
            x.grad = None

    def step() -> None:
        if not train:
            run()
            return
        with torch.enable_grad():
            out = run()
            if not grad or grad[0].shape != out.shape:
                grad[:] = [torch.randn_like(out)]
            out.backward(grad[0])

    return step, setup


def naive_cells(layers: dict, sweep: LayerSweep, x: Tensor, train: bool,
                dense_s: float) -> Tuple[Dict[str, Cell], List[int], str]:
    """The naive cells of one scope (the first), each at the smallest k;
    those estimated over the budget are skipped but for ``naive_always``.

    Returns:
        tuple: The cells by name, the skipped N, and the naive scope.
    """
    from ..moe.reference import naive_forward
    scope = next(iter(layers), ('module', 0))[0]
    cells, skipped = {}, []
    for (layer_scope, n), layer in layers.items():
        if layer_scope != scope or min(sweep.top_k) > n:
            continue
        over = n * dense_s * NAIVE_MARGIN > sweep.naive_budget
        if over and n not in sweep.naive_always:
            skipped.append(n)
            continue
        cells[f'naive N={n}'] = timed_cell(
            lambda m=layer: naive_forward(m, x), layer, x, train,
            min(sweep.top_k))
    return cells, skipped, scope


def moe_cells(layers: dict, sweep: LayerSweep, x: Tensor,
              train: bool) -> Dict[str, Cell]:
    """A cell per scope, N, k <= N and dispatch."""
    cells = {}
    for (scope, n), layer in layers.items():
        for k in sweep.top_k:
            for how in sweep.dispatches if k <= n else ():
                cells[f'moe {scope} N={n} k={k} {how}'] = timed_cell(
                    lambda m=layer: m(x), layer, x, train, k, how)
    return cells


def time_cells(cells: Dict[str, Cell], sweep: LayerSweep,
               warmup: int = 1, repeats: Optional[int] = None
               ) -> Dict[str, float]:
    """Median ms of each cell in interleaved rounds (after ``warmup``)."""
    runs = {name: run for name, (run, _) in cells.items()}
    setup = {name: prepare for name, (_, prepare) in cells.items()}
    return median_ms(compare_latency(runs, warmup, repeats or sweep.repeats,
                                     sweep.device, setup=setup))


def time_mode(layers: dict, dense: nn.Module, sweep: LayerSweep,
              shape: Sequence[int], mode: str,
              log: Callable[[str], None]) -> Tuple[Dict[str, float],
                                                   List[int], str]:
    """Every cell of one mode in the same rounds.

    Returns:
        tuple: Median ms per cell, the naive N skipped, the naive scope.
    """
    train = mode == 'backward'
    x = torch.randn(tuple(shape), device=sweep.device, requires_grad=train)
    for module in (dense, *layers.values()):
        module.train(train)
    cells = {'dense': timed_cell(lambda: dense(x), dense, x, train)}
    dense_s = time_cells(cells, sweep, 1, 1)['dense'] / 1000
    cells.update(moe_cells(layers, sweep, x, train))
    naive, skipped, scope = naive_cells(layers, sweep, x, train, dense_s)
    cells.update(naive)
    log(f'{len(cells)} cells x {sweep.repeats + 1} calls'
        + (f' (naive skipped for N={skipped})' if skipped else ''))
    return time_cells(cells, sweep), skipped, scope


def bench_arch(arch: str, sweep: LayerSweep,
               log: Callable[[str], None] = print) -> dict:
    """All figures of one architecture.

    Args:
        arch (str): A key of :data:`ARCH_CONFIGS`.
        sweep (LayerSweep): What to time.
        log (callable): Gets a progress line per mode.

    Returns:
        dict: ``arch``, ``path``, ``module``, ``input_shape``,
        ``settings``, ``unsupported`` and ``modes`` (mode: rows of
        :func:`layer_rows`).
    """
    path, dense, shape, settings = replaced_layer(arch, sweep.shape,
                                                  sweep.device)
    shape = (sweep.batch, ) + shape[1:]
    layers, unsupported = build_layers(dense, sweep, settings)
    result = dict(arch=arch, path=path, module=type(dense).__name__,
                  input_shape=list(shape), settings=_jsonable(settings),
                  unsupported=unsupported, modes={})
    with spread_routing(*layers.values()):
        for mode in sweep.modes:
            ms, skipped, scope = time_mode(
                layers, dense, sweep, shape, mode,
                lambda line, mode=mode: log(f'[{arch}] {mode}: {line}'))
            result['modes'][mode] = layer_rows(ms, sweep, skipped, scope)
    return result


def layer_rows(ms: Dict[str, float], sweep: LayerSweep,
               skipped: List[int], naive_scope: str) -> List[dict]:
    """One row per scope, N, k and dispatch timed.

    Returns:
        list[dict]: ``experts``, ``top_k``, ``dispatch``, ``scope``,
        ``dense_ms``, ``moe_ms``, ``naive_ms`` (None if not run),
        ``naive_skipped``, ``moe_over_dense`` and ``naive_over_moe``.
    """
    rows = []
    for scope, n in [(s, n) for s in sweep.scopes for n in sweep.experts]:
        naive = ms.get(f'naive N={n}') if scope == naive_scope else None
        for k, how in [(k, how) for k in sweep.top_k
                       for how in sweep.dispatches]:
            moe = ms.get(f'moe {scope} N={n} k={k} {how}')
            if moe is None:
                continue
            rows.append(dict(
                experts=n, top_k=k, dispatch=how, scope=scope,
                dense_ms=ms['dense'], moe_ms=moe, naive_ms=naive,
                naive_skipped=n in skipped,
                moe_over_dense=moe / ms['dense'],
                naive_over_moe=None if naive is None else naive / moe))
    return rows


def _jsonable(value):
    """``value`` as JSON gives it back (unknown types as strings)."""
    return json.loads(json.dumps(value, default=str))


def sweep_meta(sweep: LayerSweep) -> dict:
    """The sweep's settings as the report's header needs them."""
    meta = asdict(sweep)
    meta.update(naive_budget_s=meta.pop('naive_budget'),
                threads=torch.get_num_threads(), torch=torch.__version__)
    return meta
