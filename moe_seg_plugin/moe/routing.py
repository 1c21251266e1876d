"""Top-k routing and the record each forward pass leaves behind."""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor


@dataclass(frozen=True)
class TopK:
    """What top-k routing chose (:func:`choose_top_k`), before the slots are
    grouped: the routing fields of a :class:`RoutingRecord`, which
    ``PatchConvMoE.forward`` builds from them, the layout's
    ``PatchLayout.placement`` and the grouping's ``kept``.

    T is the number of patches, N the number of routed experts, k the
    experts per patch.

    Attributes:
        logits (Tensor): Gate logits (T, N), before noise.
        probs (Tensor): softmax of ``logits`` (T, N).
        experts (Tensor): Chosen experts (T, k), highest first.
        weights (Tensor): Their mixing weights (T, k).
        top_k (int): Experts per patch (1 when an expert is forced).
        noisy_logits (Tensor, optional): Logits plus noise, when noisy
            top-k chose the experts.
        noise_std (float, optional): Standard deviation of that noise.
        weighting (str): How ``weights`` were made (:func:`mixing_weights`).
    """
    logits: Tensor
    probs: Tensor
    experts: Tensor
    weights: Tensor
    top_k: int
    noisy_logits: Optional[Tensor] = None
    noise_std: Optional[float] = None
    weighting: str = 'renormalized'


@dataclass(frozen=True)
class RoutingRecord:
    """What one forward pass of a PatchConvMoE layer decided, built once,
    complete, after the slots are grouped (a copy with other values:
    ``dataclasses.replace``).

    T is the number of patches in the batch (B * gh * gw, image-major, then
    grid rows), N the number of routed experts, k the experts per patch.
    Its fields are :class:`TopK`'s, ``PatchLayout.placement``'s and
    ``kept``.

    Attributes:
        logits (Tensor): Gate logits (T, N), before noise.
        probs (Tensor): softmax of ``logits`` (T, N).
        experts (Tensor): Chosen experts (T, k), highest first.
        weights (Tensor): Their mixing weights (T, k); each row sums to 1
            unless ``weighting`` is 'gate_prob'.
        grid (tuple): (B, gh, gw).
        top_k (int): Experts per patch (1 when an expert is forced).
        noisy_logits (Tensor, optional): Logits plus noise, when noisy
            top-k chose the experts.
        noise_std (float, optional): Standard deviation of that noise.
        row_starts, row_sizes, col_starts, col_sizes (tuple): Where each
            grid cell lies in the layer's output, in pixels.
        out_size (tuple): The layer's output size (Ho, Wo).
        weighting (str): How ``weights`` were made (:func:`mixing_weights`).
        kept (Tensor, optional): (T, k) False where capacity mode dropped
            the choice; None when every choice ran.
    """
    logits: Tensor
    probs: Tensor
    experts: Tensor
    weights: Tensor
    grid: Tuple[int, int, int]
    top_k: int
    noisy_logits: Optional[Tensor] = None
    noise_std: Optional[float] = None
    row_starts: Tuple[int, ...] = ()
    row_sizes: Tuple[int, ...] = ()
    col_starts: Tuple[int, ...] = ()
    col_sizes: Tuple[int, ...] = ()
    out_size: Tuple[int, int] = (0, 0)
    weighting: str = 'renormalized'
    kept: Optional[Tensor] = None

    @property
    def num_experts(self) -> int:
        return self.logits.shape[1]

    @property
    def num_patches(self) -> int:
        return self.logits.shape[0]


#: How the chosen experts' outputs are weighted (see :func:`mixing_weights`).
WEIGHTINGS = ('renormalized', 'gate_prob', 'straight_through')


def mixing_weights(probs: Tensor, chosen: Tensor, experts: Tensor,
                   weighting: str) -> Tensor:
    """Mixing weights (T, k) of the chosen experts.

    Args:
        probs (Tensor): Softmax of the gate logits (T, N).
        chosen (Tensor): The scores (logits, plus noise if noisy) of the
            chosen experts (T, k).
        experts (Tensor): The chosen experts (T, k).
        weighting (str): 'renormalized': softmax over the chosen scores,
            summing to 1 (with top-1 always 1, so the task loss gives the
            gate no gradient); 'gate_prob': the experts' softmax
            probabilities over all N, as Switch Transformer weights its one
            expert (rows sum to less than 1); 'straight_through': the
            renormalized values forward, the gradient of 'gate_prob'
            backward.

    Returns:
        Tensor: (T, k).
    """
    if weighting == 'renormalized':
        return chosen.softmax(dim=1)
    gate_prob = probs.gather(1, experts)
    if weighting == 'gate_prob':
        return gate_prob
    hard = chosen.detach().softmax(dim=1)
    return hard + (gate_prob - gate_prob.detach())


def choose_top_k(logits: Tensor,
                 top_k: int,
                 noise_std: Optional[float] = None,
                 forced_expert: Optional[int] = None,
                 weighting: str = 'renormalized') -> TopK:
    """Choose experts for every patch.

    Args:
        logits (Tensor): Gate logits (T, N).
        top_k (int): Experts per patch.
        noise_std (float, optional): If given, Gaussian noise of this
            standard deviation is added before choosing (noisy top-k;
            Shazeer et al. 2017); callers pass it only in training.
        forced_expert (int, optional): Send every patch to this expert with
            weight 1 (fixed-expert evaluation).
        weighting (str): One of :data:`WEIGHTINGS`; see
            :func:`mixing_weights`. Default: 'renormalized'.

    Returns:
        TopK: The choice: experts and weights (T, k), probs (T, N).
    """
    probs = logits.softmax(dim=1)
    if forced_expert is not None:
        experts = torch.full((logits.shape[0], 1), forced_expert,
                             dtype=torch.long, device=logits.device)
        weights = torch.ones(logits.shape[0], 1, dtype=logits.dtype,
                             device=logits.device)
        return TopK(logits, probs, experts, weights, 1,
                    weighting='renormalized')
    noisy = None
    scores = logits
    if noise_std is not None:
        noisy = logits + torch.randn_like(logits) * noise_std
        scores = noisy
    chosen, experts = scores.topk(top_k, dim=1)
    weights = mixing_weights(probs, chosen, experts, weighting)
    return TopK(logits, probs, experts, weights, top_k, noisy_logits=noisy,
                noise_std=noise_std, weighting=weighting)


def top_k_route(logits: Tensor,
                top_k: int,
                noise_std: Optional[float] = None,
                forced_expert: Optional[int] = None,
                weighting: str = 'renormalized') -> RoutingRecord:
    """:func:`choose_top_k` as a record of no layout (logits alone, no
    layer: for statistics and losses of a routing).

    Args: as :func:`choose_top_k`.

    Returns:
        RoutingRecord: The choice; grid (0, 0, 0), the layout fields empty
        and ``kept`` None.
    """
    choice = choose_top_k(logits, top_k, noise_std, forced_expert, weighting)
    return RoutingRecord(**vars(choice), grid=(0, 0, 0))


def weight_matrix(experts: Tensor, weights: Tensor,
                  num_experts: int) -> Tensor:
    """Top-k routing as a (T, N) matrix: each patch's mixing weight of
    each expert, zero where the expert was not chosen.

    Args:
        experts (Tensor): (T, k) each patch's experts (distinct per row).
        weights (Tensor): (T, k) their weights.
        num_experts (int): N.

    Returns:
        Tensor: (T, N).
    """
    matrix = weights.new_zeros(weights.shape[0], num_experts)
    return matrix.scatter(1, experts, weights)


def count_values(values: Tensor, size: int) -> Tensor:
    """How often each of 0 .. size - 1 appears in ``values`` (any shape; an
    expert per slot, say), as a long tensor (size,) on its device: a
    scatter-add, which unlike ``torch.bincount`` needs no host sync on
    CUDA."""
    flat = values.reshape(-1)
    return torch.zeros(size, dtype=torch.long,
                       device=flat.device).scatter_add_(
                           0, flat, torch.ones_like(flat))
