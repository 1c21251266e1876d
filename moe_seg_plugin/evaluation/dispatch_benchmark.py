"""The PatchConvMoE layer against the limit of k dense layers.

The harness (the predecessor layer's): N experts, each Conv3x3 + BN + ReLU,
top-k routing over a 3x3 grid, the 2Conv-GAP gate with routing spread over
all experts, the switch loss. :func:`dispatch_rows` times, per N, the layer
of one or more cores (this checkout's, another checkout's loaded by
:func:`load_core`, or the same in capacity mode) beside k dense layers, in
the same interleaved rounds; :func:`count_functions` counts the functions
of the core that one training step calls.
"""
import copy
import importlib.util
import os
import sys
from types import ModuleType
from typing import (Callable, Dict, Iterator, Mapping, Optional, Sequence,
                    Tuple)

import torch
from torch import Tensor, nn

from .latency import Device, compare_latency, median_ms
from .spread import spread_routing

#: Spread offset of this harness (precise enough under bf16 autocast).
SPREAD_SCALE = 20.0
#: Patches per image: the 3x3 grid.
GRID = (3, 3)
#: name: (core package, extra PatchConvMoE settings).
Cores = Mapping[str, Tuple[ModuleType, dict]]


def load_core(checkout: str, name: str) -> ModuleType:
    """``moe_seg_plugin/moe`` of ``checkout`` as the package ``name`` (e.g.
    a git worktree of an older commit, timed beside this one).

    Args:
        checkout (str): The other checkout's root folder.
        name (str): A package name not taken yet (e.g. 'moe_core_old').

    Returns:
        module: The loaded core package.
    """
    folder = os.path.join(checkout, 'moe_seg_plugin', 'moe')
    init = os.path.join(folder, '__init__.py')
    if not os.path.isfile(init):
        raise FileNotFoundError(f'{checkout}: no moe_seg_plugin/moe package '
                                'there')
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[folder])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def expert_module(channels: int) -> nn.Module:
    """Conv3x3 + BN + ReLU (what an mmcv ConvModule holds).

    Args:
        channels (int): Input and output channels.

    Returns:
        nn.Module: The dense layer the experts copy.
    """
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


def build_layer(core: ModuleType, module: nn.Module, experts: int,
                top_k: int, **settings) -> nn.Module:
    """A layer of ``core`` on the harness: 3x3 grid, 2Conv-GAP gate, the
    switch loss; seeded, so every core starts from the same draw.

    Args:
        core (module): A core package (``moe_seg_plugin.moe`` or a copy).
        module (nn.Module): The dense layer to replace (copied).
        experts (int): N.
        top_k (int): k.
        settings: More PatchConvMoE settings (e.g. ``capacity_factor``).

    Returns:
        nn.Module: The PatchConvMoE layer.
    """
    torch.manual_seed(0)
    return core.PatchConvMoE(
        copy.deepcopy(module), num_experts=experts, top_k=top_k, grid=GRID,
        gate=dict(type='DoubleConvGAPGate'),
        balance_loss=dict(type='MoESwitchLoss', loss_weight=0.01),
        **settings)


def forward_fn(layer: nn.Module, x: Tensor) -> Callable[[], None]:
    """One eval forward of ``layer`` on ``x`` (B, C, H, W), no grad."""
    def run() -> None:
        layer.eval()
        with torch.no_grad():
            layer(x)
    return run


def train_fn(layer: nn.Module, x: Tensor) -> Callable[[], None]:
    """One training step of ``layer`` on ``x`` (B, C, H, W): forward in
    train mode, a square loss plus the balancing loss, backward."""
    def run() -> None:
        layer.train()
        with torch.enable_grad():
            xg = x.detach().requires_grad_()
            loss = layer(xg).square().mean()
            if hasattr(layer, 'balance_loss'):
                loss = loss + sum(layer.balance_loss().values())
            loss.backward()
        layer.zero_grad(set_to_none=True)
    return run


def dense_fn(module: nn.Module, x: Tensor, times: int,
             train: bool) -> Callable[[], None]:
    """``times`` calls of the dense ``module`` on ``x`` (B, C, H, W): eval
    forwards, or with ``train`` forward + backward steps."""
    def run() -> None:
        module.train(train)
        with torch.set_grad_enabled(train):
            for _ in range(times):
                out = module(x.detach().requires_grad_(train))
                if train:
                    out.square().mean().backward()
        module.zero_grad(set_to_none=True)
    return run


def under_autocast(run: Callable[[], None], device: Device,
                   dtype: Optional[torch.dtype]) -> Callable[[], None]:
    """``run`` inside autocast to ``dtype`` (as it is for None)."""
    if dtype is None:
        return run
    kind = torch.device(device).type

    def wrapped() -> None:
        with torch.autocast(kind, dtype=dtype):
            run()
    return wrapped


def _mode_cells(module: nn.Module, layers: Dict[str, nn.Module], x: Tensor,
                top_k: int, train: bool) -> Dict[str, Callable[[], None]]:
    """The cells of one mode: k dense layers, then each core's layer."""
    make = train_fn if train else forward_fn
    cells = {'dense': dense_fn(module, x, top_k, train)}
    cells.update({name: make(layer, x) for name, layer in layers.items()})
    return cells


def dispatch_rows(cores: Cores, module: nn.Module, x: Tensor,
                  experts: Sequence[int], top_k: int, repeats: int,
                  device: Device,
                  autocast: Optional[torch.dtype] = None) -> Iterator[dict]:
    """Per N and mode, the median ms of k dense layers and of each core's
    layer, all timed in the same interleaved rounds after one warm-up.

    Args:
        cores (dict): name: (core, extra layer settings).
        module (nn.Module): The dense layer, on ``device``.
        x (Tensor): The input (B, C, H, W), on ``device``.
        experts (list[int]): The N to time.
        top_k (int): k.
        repeats (int): Timed rounds.
        device: Where the cells run.
        autocast (torch.dtype, optional): Run every cell under autocast.

    Yields:
        dict: ``experts``, ``mode`` ('forward' or 'fwd+bwd'), ``dense``
        and each core's name: median ms.
    """
    for n in experts:
        layers = {name: build_layer(core, module, n, top_k,
                                    **settings).to(device)
                  for name, (core, settings) in cores.items()}
        with spread_routing(*layers.values(), scale=SPREAD_SCALE):
            for mode, train in (('forward', False), ('fwd+bwd', True)):
                cells = _mode_cells(module, layers, x, top_k, train)
                cells = {name: under_autocast(run, device, autocast)
                         for name, run in cells.items()}
                medians = median_ms(compare_latency(cells, 1, repeats,
                                                    device))
                yield dict(experts=n, mode=mode, **medians)


def table_header(names: Sequence[str]) -> Tuple[str, str]:
    """The Markdown header and rule of :func:`dispatch_rows`' table."""
    header = '| N | mode | dense x k (ms) | ' + ' | '.join(
        f'{name} (ms) | {name} ratio' for name in names) + ' |'
    return header, '|' + '---|' * (3 + 2 * len(names))


def table_row(row: dict, names: Sequence[str]) -> str:
    """One Markdown row: dense ms, then each core's ms and ratio."""
    cells = [str(row['experts']), row['mode'], f"{row['dense']:.1f}"]
    for name in names:
        cells += [f'{row[name]:.1f}', f"{row[name] / row['dense']:.3f}"]
    return '| ' + ' | '.join(cells) + ' |'


def count_functions(core: ModuleType, module: nn.Module, x: Tensor,
                    top_k: int) -> Dict[str, int]:
    """Distinct functions of ``core`` that one training step calls (N=8).

    Args:
        core (module): The core package.
        module (nn.Module): The dense layer, on ``x``'s device.
        x (Tensor): The input (B, C, H, W).
        top_k (int): k.

    Returns:
        dict: ``functions``, ``classes`` (that define them) and ``files``.
    """
    layer = build_layer(core, module, 8, top_k).to(x.device)
    step = train_fn(layer, x)
    with spread_routing(layer, scale=SPREAD_SCALE):
        step()  # layouts and the spread offset cached, as in training
        seen = _calls_into(os.path.dirname(core.__file__), step)
    classes = {_owner_class(filename, name, core)
               for filename, _, name in seen}
    classes.discard(None)
    return dict(functions=len(seen), classes=len(classes),
                files=len({filename for filename, _, _ in seen}))


def _calls_into(folder: str, run: Callable[[], None]) -> set:
    """(file, first line, name) of every function in ``folder`` that
    ``run()`` calls."""
    seen = set()

    def hook(frame, event, arg) -> None:
        if event == 'call' and frame.f_code.co_filename.startswith(folder):
            code = frame.f_code
            seen.add((code.co_filename, code.co_firstlineno, code.co_name))

    sys.setprofile(hook)
    try:
        run()
    finally:
        sys.setprofile(None)
    return seen


def _owner_class(filename: str, name: str,
                 core: ModuleType) -> Optional[str]:
    """The class of the core defining a method ``name`` in ``filename``."""
    for module_name, module in list(sys.modules.items()):
        if not module_name.startswith(core.__name__ + '.'):
            continue
        if getattr(module, '__file__', None) != filename:
            continue
        for attr in vars(module).values():
            if (isinstance(attr, type) and attr.__module__ == module_name
                    and name in vars(attr)):
                return f'{module_name}.{attr.__name__}'
    return None
