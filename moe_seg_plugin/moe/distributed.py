"""Keeping collective norms inside experts in step across ranks.

Under data-parallel training every rank routes its own patches, so ranks
choose different experts. A collective norm (SyncBN) inside an expert is a
collective call in the expert's forward (an all-gather of batch
statistics) and backward (an all-reduce): every rank must call it, for the
same expert, in the same order, or ranks pair one expert's statistics with
another's and finally wait on a peer that never comes.

The layer therefore, in training with collective norms and several ranks:

1. sums the per-expert patch counts over the ranks (one all-reduce of N
   numbers, every forward, on every rank);
2. runs, in expert order, every expert that some rank chose: on its own
   patches, or on an empty batch where this rank has none (SyncBN takes
   part in the collectives with a zero count);
3. skips, on every rank alike, the experts no rank chose (their statistics
   would be empty everywhere).
"""
from typing import List, Sequence

import torch
from torch import nn

#: Class names of collective norms from other libraries (mmcv's compiled
#: ``SyncBatchNorm``), matched by name so the core needs no mmcv.
COLLECTIVE_NORM_NAMES = frozenset({'SyncBatchNorm', 'MMSyncBN'})


def is_collective_norm(module: nn.Module) -> bool:
    """Whether ``module`` synchronises statistics across ranks in
    training."""
    return (isinstance(module, nn.SyncBatchNorm)
            or type(module).__name__ in COLLECTIVE_NORM_NAMES)


def has_collective_norm(modules: Sequence[nn.Module]) -> bool:
    """Whether any of ``modules`` holds a collective norm."""
    return any(
        is_collective_norm(sub) for module in modules
        for sub in module.modules())


def world_size() -> int:
    """Ranks of the default process group (1 when not distributed)."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size()


def global_counts(local: Sequence[int], device: torch.device) -> List[int]:
    """Per-expert patch counts summed over all ranks.

    Args:
        local (list[int]): This rank's patches per expert.
        device (torch.device): Where the collective runs (the input's
            device: NCCL needs CUDA tensors).

    Returns:
        list[int]: The sums, identical on every rank.
    """
    counts = torch.tensor(list(local), dtype=torch.int64, device=device)
    torch.distributed.all_reduce(counts)
    return counts.tolist()
