"""ONNX export of a segmentor with its routing kept, and its check.

A PatchConvMoE layer with module experts exports in capacity mode
(``capacity_factor``): every expert runs on a fixed number of windows, so
the graph has static shapes while which patches each expert gets still
depends on the input. A layer with merged kernels (``expert_scope='conv'``)
needs no capacity: the graph mixes each patch's k kernels (chosen from the
input) and convolves each patch's window once. The
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
        capacity_factor (float, optional): Its capacity factor (None for
            merged kernels).
        merged (bool): Whether the graph merges each patch's kernels.
        chosen (int): Windows the routing chooses (T * k).
        computed (int): Windows the graph computes (N * capacity; T when
            merged).
    """
    path: str
    capacity_factor: Optional[float]
    merged: bool = False
    chosen: int = 0
    computed: int = 0


def plan_capacity(model: nn.Module,
                  factor: Optional[float]) -> List[CapacityPlan]:
    """Put every MoE layer of ``model`` with module experts in capacity
    mode; a merged layer keeps its own factor (None: nothing to drop).

    Args:
        model (nn.Module): The model (changed in place).
        factor (float, optional): Capacity factor for every layer; None
            keeps a layer's own and gives a module-expert layer without one
            N / k (room for every choice: the default mode's output, each
            expert on every patch).

    Returns:
        list[CapacityPlan]: One per layer, in model order.
    """
    plans = []
    for path, layer in model.named_modules():
        if not isinstance(layer, PatchConvMoE):
            continue
        merged = layer.expert_scope == 'conv' and layer.merge_experts
        if factor is not None:
            layer.capacity_factor = float(factor)
        elif layer.capacity_factor is None and not merged:
            layer.capacity_factor = layer.num_experts / layer.top_k
        plans.append(CapacityPlan(path, layer.capacity_factor, merged))
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


def _dropped_share(kept: Optional[Tensor]) -> float:
    """The share of choices capacity dropped (0 where nothing can be)."""
    return 0.0 if kept is None else float(1 - kept.float().mean())


def check_export(module: nn.Module, session, inputs: List[Tensor],
                 plans: List[CapacityPlan]) -> dict:
    """Run an exported graph in onnxruntime against eager PyTorch.

    Args:
        module (nn.Module): The exported module (eval mode).
        session (onnxruntime.InferenceSession): The graph's session.
        inputs (list[Tensor]): Inputs (1, 3, H, W) to compare on.
        plans (list[CapacityPlan]): The plans of ``module``'s MoE layers
            (:func:`plan_capacity` on it); their window counts are filled
            in.

    Returns:
        dict: ``max_abs_diff`` per input, ``routes_differ`` (whether the
        inputs' routing differs, per MoE layer) and ``dropped_share`` per
        input and layer.
    """
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
            p: _dropped_share(module.get_submodule(p).last_routing.kept)
            for p in layers
        })
    for p, plan in layers.items():  # the same for every input of one size
        layer = module.get_submodule(p)
        record = layer.last_routing
        plan.chosen = record.experts.numel()
        plan.computed = (record.num_patches if layer.capacity_factor is None
                         else layer.num_experts * expert_capacity(
                             layer.capacity_factor, record.num_patches,
                             layer.top_k, layer.num_experts))
    differ = {
        p: any(not torch.equal(r[p], routings[0][p]) for r in routings[1:])
        for p in routings[0]
    }
    return dict(max_abs_diff=diffs, routes_differ=differ,
                dropped_share=dropped)


def cpu_session(model, threads: Optional[int] = None):
    """An onnxruntime CPU session of an ONNX file or ``ModelProto``.

    Its threads do not spin once a run is done (spinning threads would take
    the cores from PyTorch timed next to it).

    Args:
        model (str | onnx.ModelProto): The graph.
        threads (int, optional): Intra-op threads (default onnxruntime's:
            one per physical core).
    """
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    if threads:
        options.intra_op_num_threads = threads
    source = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(source, options,
                                providers=['CPUExecutionProvider'])


__all__ = [
    'TensorMode', 'CapacityPlan', 'plan_capacity', 'export_onnx',
    'probe_inputs', 'check_export', 'cpu_session', 'require_export_extra'
]
