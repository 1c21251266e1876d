"""A compact progress bar for training runs that log quietly."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.utils import ProgressBar
from mmseg.registry import HOOKS


@HOOKS.register_module()
class ProgressHook(Hook):
    """Shows MMEngine's progress bar over the training iterations and the
    last loss when training ends (for runs with ``log_level='WARNING'``).

    Args:
        title (str): Printed before the bar.
    """
    priority = 'LOW'

    def __init__(self, title: str = '') -> None:
        self.title = title
        self.bar: Optional[ProgressBar] = None
        self.loss: Optional[float] = None

    def before_train(self, runner) -> None:
        if self.title:
            print(self.title, flush=True)
        self.bar = ProgressBar(runner.max_iters - runner.iter)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if outputs and 'loss' in outputs:
            self.loss = float(outputs['loss'])
        if self.bar is not None:
            self.bar.update()

    def after_train(self, runner) -> None:
        last = f'last loss {self.loss:.3f}' if self.loss is not None else ''
        print(f'\n      done, {last}', flush=True)
