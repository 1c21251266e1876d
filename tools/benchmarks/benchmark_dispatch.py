"""The PatchConvMoE layer against the limit of k dense layers, and the
functions one training step of it runs.

Harness (the predecessor layer's): N experts, each Conv3x3 + BN + ReLU with
128 channels, input 2x128x126x252, top-k routing over a 3x3 grid, the
2Conv-GAP gate with a round-robin logit offset so that patches spread over
all experts (as a balanced trained gate's would), the switch loss. For each
N it times, in interleaved rounds (every ratio from the same stretch of
machine load; medians after one warm-up):

- dense x k: the replaced module on the whole map, k times (the limit a
  sparse layer approaches: every output pixel computed by k experts);
- moe: the layer, forward (eval, no grad) and forward + backward (train);
  with ``--capacity-factor F`` also in capacity mode ("capacity").

``--old CHECKOUT`` also times the layer of another checkout (e.g. a git
worktree of an older commit) in the same rounds, loaded from its
``moe_seg_plugin/moe`` folder under another name.

``--count-functions`` runs one training forward + backward of the layer
(N=8) under a profiler hook and prints how many distinct functions (and
classes) of ``moe_seg_plugin/moe`` it called, and in how many files.

Usage:
    python tools/benchmarks/benchmark_dispatch.py [--experts 4 8 32] [--top-k 2]
        [--threads 1] [--repeats 5] [--old PATH] [--capacity-factor F]
        [--count-functions]
        [--device cpu]
"""
import argparse
import copy
import importlib
import importlib.util
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import torch  # noqa: E402
from torch import nn  # noqa: E402

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--experts', nargs='+', type=int, default=[4, 8, 32])
    parser.add_argument('--top-k', type=int, default=2)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--shape', nargs=2, type=int, default=[126, 252])
    parser.add_argument('--channels', type=int, default=128)
    parser.add_argument('--old', help='another checkout to time beside '
                        'this one (its moe_seg_plugin/moe)')
    parser.add_argument('--capacity-factor', type=float,
                        help='also time this checkout\'s layer in capacity '
                        'mode with this factor (column "capacity")')
    parser.add_argument('--count-functions', action='store_true',
                        help='count the functions of one training step')
    parser.add_argument('--device', default='cpu')
    return parser.parse_args(argv)


def load_core(checkout: str, name: str):
    """``moe_seg_plugin/moe`` of ``checkout`` as the package ``name``."""
    folder = os.path.join(checkout, 'moe_seg_plugin', 'moe')
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(folder, '__init__.py'),
        submodule_search_locations=[folder])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def expert_module(channels: int) -> nn.Module:
    """Conv3x3 + BN + ReLU (what an mmcv ConvModule holds)."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


def build_layer(core, module: nn.Module, experts: int, top_k: int,
                patches: int, **kwargs) -> nn.Module:
    """A layer of ``core`` with spread routing and the switch loss."""
    torch.manual_seed(0)
    layer = core.PatchConvMoE(
        copy.deepcopy(module), num_experts=experts, top_k=top_k,
        grid=(3, 3), gate=dict(type='DoubleConvGAPGate'),
        balance_loss=dict(type='MoESwitchLoss', loss_weight=0.01), **kwargs)
    reference = importlib.import_module(core.__name__ + '.reference')
    bias = reference.spread_bias(patches, experts, top_k, scale=20.0)
    layer.gate.register_forward_hook(
        lambda m, args, out: out + bias.to(out.device, out.dtype))
    return layer


def forward_fn(layer: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        layer.eval()
        with torch.no_grad():
            layer(x)
    return run


def train_fn(layer: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        layer.train()
        xg = x.detach().requires_grad_()
        out = layer(xg)
        loss = out.square().mean()
        if hasattr(layer, 'balance_loss'):
            loss = loss + sum(layer.balance_loss().values())
        loss.backward()
        layer.zero_grad(set_to_none=True)
    return run


def dense_fn(module: nn.Module, x: torch.Tensor, times: int,
             train: bool) -> Callable[[], None]:
    def run() -> None:
        module.train(train)
        if not train:
            with torch.no_grad():
                for _ in range(times):
                    module(x)
            return
        for _ in range(times):
            xg = x.detach().requires_grad_()
            module(xg).square().mean().backward()
        module.zero_grad(set_to_none=True)
    return run


def sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_rounds(cells: Dict[str, Callable[[], None]], repeats: int,
                device: str) -> Dict[str, float]:
    """Median seconds of each cell over interleaved rounds."""
    for run in cells.values():
        run()
    times: Dict[str, List[float]] = {name: [] for name in cells}
    for _ in range(repeats):
        for name, run in cells.items():
            sync(device)
            start = time.perf_counter()
            run()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def count_functions(core, module: nn.Module, x: torch.Tensor,
                    top_k: int) -> Dict[str, int]:
    """Distinct functions of the core that one training step calls."""
    patches = x.shape[0] * 9
    layer = build_layer(core, module, 8, top_k, patches).to(x.device)
    step = train_fn(layer, x)
    step()  # layouts cached, as in training
    folder = os.path.dirname(core.__file__)
    seen = set()

    def hook(frame, event, arg):
        if event == 'call' and frame.f_code.co_filename.startswith(folder):
            code = frame.f_code
            seen.add((code.co_filename, code.co_firstlineno, code.co_name))
    sys.setprofile(hook)
    try:
        step()
    finally:
        sys.setprofile(None)
    classes = set()
    for filename, _, name in seen:
        owner = _owner_class(filename, name, core)
        if owner:
            classes.add(owner)
    return dict(functions=len(seen), classes=len(classes),
                files=len({f for f, _, _ in seen}))


def _owner_class(filename: str, name: str, core) -> Optional[str]:
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


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = args.device
    new = load_core(ROOT, 'moe_core_new')
    cores = {'new': (new, {})}
    if args.capacity_factor is not None:
        cores['capacity'] = (new, dict(capacity_factor=args.capacity_factor))
    if args.old:
        cores['old'] = (load_core(os.path.abspath(args.old),
                                  'moe_core_old'), {})
    module = expert_module(args.channels).to(device)
    x = torch.randn(args.batch, args.channels, *args.shape, device=device)
    if args.count_functions:
        for name, (core, _) in cores.items():
            counts = count_functions(core, module, x, args.top_k)
            print(f'{name}: one training forward + backward (N=8, '
                  f'k={args.top_k}) calls {counts["functions"]} functions '
                  f'of {counts["classes"]} classes in {counts["files"]} '
                  'files of moe_seg_plugin/moe')
        return 0
    patches = args.batch * 9
    print(f'device {device}, {args.threads} thread(s), input '
          f'{args.batch}x{args.channels}x{args.shape[0]}x{args.shape[1]}, '
          f'top-{args.top_k}, 3x3 grid, spread routing; ratio = layer / '
          f'{args.top_k} dense layers (median of {args.repeats} rounds)')
    header = '| N | mode | dense x k (ms) | ' + ' | '.join(
        f'{name} (ms) | {name} ratio' for name in cores) + ' |'
    print(header)
    print('|' + '---|' * (3 + 2 * len(cores)))
    for experts in args.experts:
        layers = {name: build_layer(core, module, experts, args.top_k,
                                    patches, **kwargs).to(device)
                  for name, (core, kwargs) in cores.items()}
        for mode, make, train in (('forward', forward_fn, False),
                                  ('fwd+bwd', train_fn, True)):
            cells = {'dense': dense_fn(module, x, args.top_k, train)}
            cells.update({name: make(layer, x)
                          for name, layer in layers.items()})
            medians = time_rounds(cells, args.repeats, device)
            row = [str(experts), mode, f'{medians["dense"] * 1e3:.1f}']
            for name in cores:
                row += [f'{medians[name] * 1e3:.1f}',
                        f'{medians[name] / medians["dense"]:.3f}']
            print('| ' + ' | '.join(row) + ' |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
