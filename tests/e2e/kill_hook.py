"""A hook that kills its own process with SIGKILL (``kill -9``) before a
given training iteration: the fault tests' way to cut a real
``tools/train.py`` run short at a known point."""
import os
import signal

from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class KillAtIterHook(Hook):
    """SIGKILL before training iteration ``at`` (0-based ``runner.iter``).

    Args:
        at (int): The iteration that never starts.
    """

    def __init__(self, at: int) -> None:
        self.at = at

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if runner.iter == self.at:
            os.kill(os.getpid(), signal.SIGKILL)
