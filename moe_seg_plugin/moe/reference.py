"""The naive PatchConvMoE: every expert on every patch window, then masked.

This is the layer as the method is written down, with none of the sparse
dispatch: all patch windows are cut out, every routed expert runs on all of
them (stage by stage with the padding masks where needed), and the outputs
are combined with a dense (T, N) weight matrix that is zero for the experts
a patch did not choose. It costs N
experts' compute whatever ``top_k`` is. It gives the same output and
gradients as ``PatchConvMoE.forward`` (up to float rounding, and in eval
mode when experts hold batch norms: in training those normalise over the
patches they see), so it serves as a test oracle and as the benchmark's
baseline.
"""
from typing import Union

import torch
from torch import Tensor, nn

from .dispatch import gather_windows, put_back
from .experts import run_expert
from .layer import PatchConvMoE
from .patches import all_patches
from .routing import RoutingRecord, TopK, weight_matrix


def dense_weights(record: Union[TopK, RoutingRecord],
                  num_experts: int) -> Tensor:
    """The routing as a (T, N) matrix: each patch's mixing weight of each
    expert, zero where the expert was not chosen.

    Args:
        record (TopK | RoutingRecord): A choice (``PatchConvMoE.route``)
            or a layer's record: experts and weights (T, k).
        num_experts (int): N.

    Returns:
        Tensor: (T, N).
    """
    return weight_matrix(record.experts, record.weights, num_experts)


def naive_forward(layer: PatchConvMoE, x: Tensor) -> Tensor:
    """What ``layer(x)`` returns, computed the naive way.

    The gate and routing are the layer's own (same logits; noisy gating
    draws its own noise). ``layer.last_routing`` is left as it was.

    Args:
        layer (PatchConvMoE): The layer whose weights to use.
        x (Tensor): Its input (B, C, H, W).

    Returns:
        Tensor: (B, C_out, Ho, Wo).
    """
    layout = layer.layout(x.shape[2], x.shape[3])
    record = layer.route(layer.gate(x, layout.cell_means))
    if layer.stem is not None:  # low-rank experts: on the stem's output
        x, layout = layer.stem(x), layer.expert_layout(layout)
    patches = all_patches(layout, x.shape[0], x.device)
    windows = gather_windows(x, layout, patches)
    weights = dense_weights(record, layer.num_experts)
    mixed = 0
    for index, expert in enumerate(layer.experts):
        out = run_expert(expert, layer.expert_steps, windows, layout,
                         patches)
        mixed = mixed + out * weights[:, index].to(out.dtype).view(
            -1, 1, 1, 1)
    for expert in layer.shared_experts:
        mixed = mixed + run_expert(expert, layer.expert_steps, windows,
                                   layout, patches)
    out = put_back(mixed, layout, x.shape[0])
    # expert_scope='conv': the layers after the convolution, once.
    return out if layer.tail is None else layer.tail(out)


def spread_bias(num_patches: int, num_experts: int, top_k: int,
                scale: float = 100.0) -> Tensor:
    """Logit offsets that spread patches over the experts round-robin.

    Patch t gets ``scale`` on experts ``(t * top_k + j) % num_experts`` for
    j < top_k and 0 elsewhere, so adding it to gate logits makes every
    expert busy (as a well-balanced trained gate would) while the chosen
    experts' weights still come from the gate. For benchmarks and tests.

    Returns:
        Tensor: (num_patches, num_experts).
    """
    bias = torch.zeros(num_patches, num_experts)
    for patch in range(num_patches):
        for rank in range(top_k):
            bias[patch, (patch * top_k + rank) % num_experts] = scale
    return bias


@torch.no_grad()
def randomise_batch_norms(module: nn.Module) -> nn.Module:
    """Give every batch norm in ``module`` running statistics and affine
    terms away from 0 and 1 (means in [-1, 1], variances in [0.5, 2],
    scales in [0.5, 1.5], shifts in [-0.5, 0.5]), so that a norm applied
    in the wrong place shows. For tests.

    Returns:
        nn.Module: ``module``, changed in place.
    """
    for sub in module.modules():
        if isinstance(sub, nn.BatchNorm2d):
            sub.running_mean.uniform_(-1, 1)
            sub.running_var.uniform_(0.5, 2)
            sub.weight.uniform_(0.5, 1.5)
            sub.bias.uniform_(-0.5, 0.5)
    return module
