"""A MoE model's latency against its top-k cost floor.

Top-k computes the replaced layer's every output pixel k times and nothing
else needs to change, so a MoE model costs at least
``1 + sum over its MoE layers of (k - 1) * s`` of the stock model, ``s``
being the replaced (dense) layer's share of the stock model's time.
:func:`measure_floor` times, in the same interleaved rounds of one process,
the stock model, the MoE model with its routing spread over all experts
(:func:`spread_routing`, as a balanced trained gate would spread it) and
each dense layer alone on the input it gets inside the stock model; in
eval (forward) or as a training step (forward and backward).
"""
from typing import Callable, Dict

import torch
from torch import Tensor, nn

from ..models.injection import moe_layers
from .latency import compare_latency
from .spread import spread_routing


def dense_inputs(stock: nn.Module, paths, x: Tensor) -> Dict[str, Tensor]:
    """The input each dense layer at ``paths`` gets in ``stock``'s tensor
    forward of ``x`` (detached copies)."""
    found: Dict[str, Tensor] = {}
    handles = []
    for path in paths:

        def keep(module, args, path=path) -> None:
            found[path] = args[0].detach().clone()

        handles.append(stock.get_submodule(path).register_forward_pre_hook(
            keep))
    try:
        with torch.no_grad():
            stock(x, mode='tensor')
    finally:
        for handle in handles:
            handle.remove()
    return found


def _step(forward: Callable[[], Tensor], train: bool) -> Callable[[], None]:
    """One timed call: ``forward()``, and with ``train`` its backward."""
    if not train:
        return forward

    def step() -> None:
        with torch.enable_grad():
            forward().float().sum().backward()

    return step


def measure_floor(moe: nn.Module, stock: nn.Module, x: Tensor,
                  train: bool = False, warmup: int = 1,
                  repeats: int = 5) -> Dict[str, object]:
    """MoE/stock latency against the top-k floor, in one process.

    Args:
        moe (nn.Module): The MoE segmentor.
        stock (nn.Module): Its stock segmentor; a MoE layer's path names
            the dense layer it replaced in it.
        x (Tensor): The input image batch (B, 3, H, W).
        train (bool): Time a training step (train mode, forward and
            backward of the tensor-mode output's sum) instead of an eval
            forward.
        warmup (int): Untimed rounds.
        repeats (int): Timed rounds (medians are reported).

    Returns:
        dict: ``shares`` (per MoE layer path, s: the dense layer's median
        over the stock model's), ``floor`` (1 + sum (k - 1) * s),
        ``ratio`` (MoE median / stock median), ``excess`` (ratio - floor)
        and ``latency`` (:func:`compare_latency`'s figures).
    """
    layers = moe_layers(moe)
    inputs = dense_inputs(stock, layers, x)
    for model in (moe, stock):
        model.train(train)
    runs = {
        'stock': _step(lambda: stock(x, mode='tensor'), train),
        'moe': _step(lambda: moe(x, mode='tensor'), train),
    }
    for path, dense_in in inputs.items():
        dense = stock.get_submodule(path)
        if train:
            dense_in = dense_in.requires_grad_()
        runs[f'dense:{path}'] = _step(
            lambda dense=dense, dense_in=dense_in: dense(dense_in), train)
    with spread_routing(moe):
        latency = compare_latency(runs, warmup, repeats, x.device)
    stock_ms = latency['stock']['median_ms']
    shares = {
        path: latency[f'dense:{path}']['median_ms'] / stock_ms
        for path in inputs
    }
    floor = 1 + sum((layers[path].top_k - 1) * share
                    for path, share in shares.items())
    ratio = latency['moe']['median_ms'] / stock_ms
    return dict(shares=shares, floor=floor, ratio=ratio,
                excess=ratio - floor, latency=latency)
