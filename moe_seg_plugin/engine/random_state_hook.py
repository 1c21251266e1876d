"""Exact resume: the random streams go into the checkpoint and come back.

MMEngine's ``--resume`` restores weights, optimizer, schedulers and the
seed, but not where the random streams stood: after a resume, dropout,
noisy gating (torch), MMSeg's augmentation in the main process (numpy,
``random``) and any other draw continue from a fresh seed, so the resumed
run drifts from the uninterrupted one. :class:`RandomStateHook` fixes that:

* ``before_save_checkpoint``: the states of torch (CPU and every CUDA
  device), numpy and ``random`` go into ``checkpoint['random_state']``;
* on resume, they are restored right before the first batch after the
  resume point is loaded (an iteration-based loop first re-reads the
  batches it skips, which draws from the same streams);
* validation during training runs on a copy of the streams: the training
  streams after it are where they were before it, so the state saved with
  a checkpoint (before validation) is the state the next iteration starts
  from.

The data order and the loader workers' streams need no saving: MMEngine's
samplers and ``worker_init_fn`` derive them from the seed, which the
plugin's tools/train.py takes from the checkpoint when resuming (see
:func:`moe_seg_plugin.engine.run_setup.resume_seed`), and the skipped
batches replay them.
"""
import logging
import random
from typing import Any, Dict, Iterator, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS

#: Key of the random state in an MMEngine checkpoint.
STATE_KEY = 'random_state'


def capture_random_state() -> Dict[str, Any]:
    """Where every random stream of this process stands.

    Returns:
        dict: torch CPU state (uint8 tensor), CUDA states (list), numpy's
        MT19937 key (int64 tensor) with its position and Gaussian cache,
        and Python ``random``'s state as a tuple of ints; all of it loads
        with torch's safe (weights-only) loading.
    """
    numpy_state = np.random.get_state(legacy=True)
    _, key, pos, has_gauss, gauss = numpy_state
    version, internal, gauss_next = random.getstate()
    return {
        'torch': torch.get_rng_state(),
        'cuda': (torch.cuda.get_rng_state_all()
                 if torch.cuda.is_available() else []),
        'numpy': {
            'key': torch.from_numpy(key.astype(np.int64)),
            'pos': int(pos),
            'has_gauss': int(has_gauss),
            'gauss': float(gauss),
        },
        'random': (version, list(internal), gauss_next),
    }


def restore_random_state(state: Dict[str, Any]) -> None:
    """Set every random stream to ``state``.

    Args:
        state (dict): From :func:`capture_random_state`.
    """
    torch.set_rng_state(state['torch'])
    if state['cuda'] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
    saved = state['numpy']
    np.random.set_state(('MT19937', saved['key'].numpy().astype(np.uint32),
                         saved['pos'], saved['has_gauss'], saved['gauss']))
    version, internal, gauss_next = state['random']
    random.setstate((version, tuple(internal), gauss_next))


class _RestoreAfterSkip:
    """An iteration-based loop's data iterator that restores the saved
    streams once the loop has re-read the batches it skips on resume.

    Args:
        inner: The loop's data iterator.
        skip (int): Batches the loop skips first.
        state (dict): The streams to restore before the next batch.
    """

    def __init__(self, inner: Iterator, skip: int, state: Dict[str, Any]):
        self.inner = inner
        self.skip = skip
        self.state: Optional[Dict[str, Any]] = state

    def __iter__(self) -> '_RestoreAfterSkip':
        return self

    def __next__(self):
        if self.skip > 0:
            self.skip -= 1
        elif self.state is not None:
            restore_random_state(self.state)
            self.state = None
        return next(self.inner)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Saves the random streams with each checkpoint and restores them on
    resume, so a resumed run repeats the uninterrupted one exactly (same
    data order, augmentation, dropout and noisy gating).

    The plugin's tools add it to every run; in a config of one's own:
    ``custom_hooks = [dict(type='RandomStateHook')]``.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._resumed: Optional[Dict[str, Any]] = None
        self._loaded = False
        self._before_val: Optional[Dict[str, Any]] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # A checkpoint saved during validation (save_best) gets the
        # training streams, which validation does not move.
        checkpoint[STATE_KEY] = (self._before_val if self._before_val
                                 is not None else capture_random_state())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded = True
        self._resumed = checkpoint.get(STATE_KEY)

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        if not self._loaded or (loop.iter == 0 and loop.epoch == 0):
            self._resumed = None  # a fresh start (or load_from): own seed
            return
        if self._resumed is None:
            print_log(
                'RandomStateHook: the resumed checkpoint holds no random '
                'state (saved without this hook); the run goes on with '
                'fresh random streams and will not repeat the '
                'uninterrupted run exactly', logger='current',
                level=logging.WARNING)
            return
        if hasattr(loop, 'dataloader_iterator'):  # iteration-based
            loop.dataloader_iterator = _RestoreAfterSkip(
                loop.dataloader_iterator, loop.iter, self._resumed)
            self._resumed = None

    def before_train_epoch(self, runner) -> None:
        if self._resumed is not None:  # epoch-based: a new epoch starts
            restore_random_state(self._resumed)
            self._resumed = None

    def before_val(self, runner) -> None:
        self._before_val = capture_random_state()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            restore_random_state(self._before_val)
            self._before_val = None
