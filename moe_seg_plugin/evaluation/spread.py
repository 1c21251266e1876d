"""Routing spread over every expert, for benchmarks.

A fresh gate often sends every patch to the same few experts, which hides
the cost of many experts; a well-balanced trained gate busies them all.
:func:`spread_routing` makes a fresh gate behave like the balanced one for
the duration of a ``with`` block.
"""
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List

from torch import Tensor, nn

from ..moe.reference import spread_bias

#: Logit offset of the spread: far above a fresh gate's logits.
SPREAD_SCALE = 100.0


def is_moe_layer(module: nn.Module) -> bool:
    """Whether ``module`` is a PatchConvMoE layer, of this checkout's core
    or of another checkout's copy of it (it has a gate, ``top_k`` and
    ``num_experts``)."""
    return (isinstance(getattr(module, 'gate', None), nn.Module)
            and hasattr(module, 'top_k') and hasattr(module, 'num_experts'))


def find_moe_layers(*modules: nn.Module) -> List[nn.Module]:
    """Every MoE layer inside ``modules`` (each counted once).

    Args:
        modules (nn.Module): Models or layers.

    Returns:
        list[nn.Module]: The layers, in module order.
    """
    found: Dict[int, nn.Module] = {}
    for root in modules:
        for module in root.modules():
            if is_moe_layer(module):
                found.setdefault(id(module), module)
    return list(found.values())


def _spread_hook(layer: nn.Module, scale: float) -> Callable:
    """A gate forward hook adding the round-robin offset for the layer's
    top-k at call time (a benchmark may change ``top_k`` in place)."""
    biases: Dict[tuple, Tensor] = {}

    def hook(module: nn.Module, inputs: tuple, logits: Tensor) -> Tensor:
        key = (*logits.shape, layer.top_k, logits.device, logits.dtype)
        if key not in biases:
            biases[key] = spread_bias(
                logits.shape[0], logits.shape[1], layer.top_k,
                scale=scale).to(logits.device, logits.dtype)
        return logits + biases[key]

    return hook


@contextmanager
def spread_routing(*modules: nn.Module,
                   scale: float = SPREAD_SCALE) -> Iterator[List[nn.Module]]:
    """Within the block, every MoE layer gate in ``modules`` gets the
    round-robin logit offset of :func:`~..moe.reference.spread_bias`:
    patch t goes to experts ``(t * k + j) % N``, so every expert is busy
    while the mixing weights still come from the gate. The gates are as
    they were after the block.

    Args:
        modules (nn.Module): Models or MoE layers.
        scale (float): The offset; far above the gate's logits (a smaller
            one, e.g. 20, keeps its precision under bf16 autocast).

    Yields:
        list[nn.Module]: The MoE layers found.
    """
    layers = find_moe_layers(*modules)
    handles = [layer.gate.register_forward_hook(_spread_hook(layer, scale))
               for layer in layers]
    try:
        yield layers
    finally:
        for handle in handles:
            handle.remove()
