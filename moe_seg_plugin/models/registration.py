"""Registers the torch-only core into ``mmseg.registry.MODELS``."""
from mmseg.registry import MODELS

from ..moe import BALANCE_LOSSES, GATES, PatchConvMoE

_registered = False


def _from_mmseg(name: str):
    """Find a gate or loss a user registered into MMSeg's MODELS."""
    return MODELS.get(name)


def register_core() -> None:
    """Register PatchConvMoE, the gates and the balancing losses (once).

    Also lets the core build gates and losses that users register in
    ``MODELS`` themselves.
    """
    global _registered
    if _registered:
        return
    MODELS.register_module(module=PatchConvMoE)
    for table in (GATES, BALANCE_LOSSES):
        for cls in table.classes.values():
            MODELS.register_module(module=cls)
        table.fallback = _from_mmseg
    _registered = True
