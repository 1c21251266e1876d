"""Refusal of a checkpoint that does not fit the model (work in progress).

:class:`CheckpointFitHook` checks a checkpoint when the Runner loads it
(``load_from``, ``--resume``, tools/test.py); the tools that load weights
without a Runner call :func:`check_checkpoint_fits` directly.
"""
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Refuses, at ``after_load_checkpoint``, a checkpoint that does not fit
    the runner's model."""

    priority = 'VERY_HIGH'
