"""Exact resume (work in progress)."""
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Saves and restores the random streams with the checkpoint."""

    priority = 'VERY_HIGH'
