"""A hook that keeps a run's progress in a small JSON file, so that another
process (a sweep watching its runs) can show it."""
import json
import os
import os.path as osp
import time

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class ProgressFileHook(Hook):
    """Writes ``{"stage", "iter", "max_iters", "time"}`` to
    ``<work_dir>/<file_name>`` every ``interval`` training iterations and
    when training, validation or testing starts or ends.

    Args:
        file_name (str): Name of the file in the work dir. Default:
            'progress.json'.
        interval (int): Training iterations between writes. Default: 10.
    """
    priority = 'VERY_LOW'

    def __init__(self, file_name: str = 'progress.json',
                 interval: int = 10) -> None:
        self.file_name = file_name
        self.interval = max(1, int(interval))

    def _write(self, runner, stage: str) -> None:
        if not is_main_process():
            return
        path = osp.join(runner.work_dir, self.file_name)
        state = dict(stage=stage, iter=runner.iter,
                     max_iters=runner.max_iters, time=time.time())
        partial = path + '.tmp'
        with open(partial, 'w', encoding='utf-8') as file:
            json.dump(state, file)
        os.replace(partial, path)  # readers never see half a file

    def before_train(self, runner) -> None:
        self._write(runner, 'train')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if runner.iter % self.interval == 0:
            self._write(runner, 'train')

    def after_train(self, runner) -> None:
        self._write(runner, 'trained')

    def before_test(self, runner) -> None:
        self._write(runner, 'test')

    def after_test(self, runner) -> None:
        self._write(runner, 'tested')


def read_progress(work_dir: str, file_name: str = 'progress.json') -> dict:
    """The last progress a run wrote ({} if none yet)."""
    try:
        with open(osp.join(work_dir, file_name), encoding='utf-8') as file:
            return json.load(file)
    except (OSError, ValueError):
        return {}
