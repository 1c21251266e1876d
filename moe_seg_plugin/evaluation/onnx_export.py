"""ONNX export of a segmentor with its routing kept, and its check.

A PatchConvMoE layer exports in capacity mode (``capacity_factor``): every
expert runs on a fixed number of windows, so the graph has static shapes
while which patches each expert gets still depends on the input. The
exported graph is the segmentor's tensor-mode forward (normalised image in,
decode-head logits out), at one input size (the patch layout depends on
it), with torch's dynamo exporter. :func:`check_export` runs it in
onnxruntime on inputs that route differently against eager PyTorch.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ..engine.errors import SetupError
from ..moe import PatchConvMoE
from ..moe.dispatch import expert_capacity
from .latency import measure_latency

EXTRA_HINT = ('ONNX export needs the export extra: pip install -e '
              '".[export]" (onnx, onnxscript, onnxruntime)')


def require_export_extra() -> None:
    """Raise a :class:`SetupError` naming the extra if onnx, onnxscript or
    onnxruntime is missing."""
    import importlib.util
    missing = [
        name for name in ('onnx', 'onnxscript', 'onnxruntime')
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise SetupError(f'{EXTRA_HINT}; missing: {", ".join(missing)}')


class TensorMode(nn.Module):
    """A segmentor's tensor-mode forward as a module of one input (what the
    exporter traces).

    Args:
        segmentor (nn.Module): An MMSeg segmentor.
    """

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor

    def forward(self, inputs: Tensor) -> Tensor:
        return self.segmentor(inputs, mode='tensor')


@dataclass
class CapacityPlan:
    """How one MoE layer runs in the exported graph.

    Attributes:
        path (str): The layer's path in the model.
        capacity_factor (float): Its capacity factor.
        chosen (int): Windows the routing chooses (T * k).
        computed (int): Windows the graph computes (N * capacity).
    """
    path: str
    capacity_factor: float
    chosen: int = 0
    computed: int = 0


def plan_capacity(model: nn.Module,
                  factor: Optional[float]) -> List[CapacityPlan]:
    """Put every MoE layer of ``model`` in capacity mode.

    Args:
        model (nn.Module): The model (changed in place).
        factor (float, optional): Capacity factor for every layer; None
            keeps a layer's own and gives a layer without one N / k (room
            for every choice: the default mode's output, each expert on
            every patch).

    Returns:
        list[CapacityPlan]: One per layer, in model order.
    """
    plans = []
    for path, layer in model.named_modules():
        if not isinstance(layer, PatchConvMoE):
            continue
        if factor is not None:
            layer.capacity_factor = float(factor)
        elif layer.capacity_factor is None:
            layer.capacity_factor = layer.num_experts / layer.top_k
        plans.append(CapacityPlan(path, layer.capacity_factor))
    return plans


def export_onnx(module: nn.Module, shape: Tuple[int, int], path: str,
                device: str = 'cpu') -> None:
    """Export ``module`` (one input (1, 3, H, W)) to ``path`` with the
    dynamo exporter."""
    example = torch.zeros(1, 3, *shape, device=device)
    with torch.no_grad():
        program = torch.onnx.export(module, (example, ), dynamo=True,
                                    verbose=False)
    program.save(path)


def probe_inputs(shape: Tuple[int, int], count: int = 3) -> List[Tensor]:
    """``count`` inputs that differ in content and contrast, so that the
    gates route them differently."""
    inputs = []
    for index in range(count):
        generator = torch.Generator().manual_seed(index)
        x = torch.randn(1, 3, *shape, generator=generator)
        inputs.append(x * (1.0 + index) + index)
    return inputs


def _routing(module: nn.Module) -> Dict[str, Tensor]:
    return {
        path: layer.last_routing.experts.clone()
        for path, layer in module.named_modules()
        if isinstance(layer, PatchConvMoE)
        and layer.last_routing is not None
    }


def check_export(module: nn.Module, path: str, inputs: List[Tensor],
                 plans: List[CapacityPlan], runs: int = 5) -> dict:
    """Run the exported graph in onnxruntime against eager PyTorch.

    Args:
        module (nn.Module): The exported module (eval mode).
        path (str): The ONNX file.
        inputs (list[Tensor]): Inputs (1, 3, H, W) to compare on.
        plans (list[CapacityPlan]): The plans of ``module``'s MoE layers
            (:func:`plan_capacity` on it); their window counts are filled
            in.
        runs (int): Timed runs for the latencies (median).

    Returns:
        dict: ``max_abs_diff`` per input, ``routes_differ`` (whether the
        inputs' routing differs, per MoE layer), ``dropped_share`` per
        input and layer, ``onnx_ms`` and ``eager_ms`` (median latency).
    """
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    diffs, routings, dropped = [], [], []
    layers = {p.path: p for p in plans}
    for x in inputs:
        with torch.no_grad():
            want = module(x)
        got = session.run(None, {name: x.cpu().numpy()})[0]
        diffs.append(float((torch.from_numpy(got) - want.cpu()).abs().max()))
        routings.append(_routing(module))
        dropped.append({
            p: float(1 - module.get_submodule(p).last_routing.kept.float()
                     .mean())
            for p in layers
        })
    for p, plan in layers.items():  # the same for every input of one size
        layer = module.get_submodule(p)
        plan.chosen = layer.last_routing.experts.numel()
        plan.computed = layer.num_experts * expert_capacity(
            layer.capacity_factor, layer.last_routing.num_patches,
            layer.top_k, layer.num_experts)
    differ = {
        p: any(not torch.equal(r[p], routings[0][p]) for r in routings[1:])
        for p in routings[0]
    }
    return dict(max_abs_diff=diffs, routes_differ=differ,
                dropped_share=dropped,
                onnx_ms=measure_latency(
                    lambda: session.run(None, {name: inputs[0].numpy()}),
                    warmup=1, repeats=runs)['median_ms'],
                eager_ms=measure_latency(lambda: module(inputs[0]), warmup=1,
                                         repeats=runs)['median_ms'])


__all__ = [
    'TensorMode', 'CapacityPlan', 'plan_capacity', 'export_onnx',
    'probe_inputs', 'check_export', 'require_export_extra'
]
