"""The random streams round-trip through a checkpoint (safe loading), come
back after the skipped batches on resume, and validation leaves them as
they were."""
import random
from types import SimpleNamespace

import numpy as np
import torch

from moe_seg_plugin.engine.random_state_hook import (RandomStateHook,
                                                     capture_random_state,
                                                     restore_random_state)


def _draws():
    return (torch.rand(3).tolist(), np.random.rand(3).tolist(),
            [random.random() for _ in range(3)], np.random.randn())


def test_the_state_round_trips_through_a_safe_loaded_checkpoint(tmp_path):
    np.random.randn()  # a cached Gaussian is part of numpy's state
    state = capture_random_state()
    expected = _draws()
    torch.save({'random_state': state}, tmp_path / 'c.pth')
    loaded = torch.load(tmp_path / 'c.pth', weights_only=True)
    _draws()
    restore_random_state(loaded['random_state'])
    assert _draws() == expected


class _Loop(SimpleNamespace):
    pass


def test_resume_restores_after_the_skipped_batches():
    hook = RandomStateHook()
    checkpoint = {}
    hook.before_save_checkpoint(None, checkpoint)
    expected = _draws()
    batches = iter(range(10))
    loop = _Loop(iter=3, epoch=0, dataloader_iterator=batches)
    hook.after_load_checkpoint(None, checkpoint)
    hook.before_train(SimpleNamespace(train_loop=loop))
    for _ in range(3):  # the loop re-reads what it skips: draws move on
        next(loop.dataloader_iterator)
        _draws()
    assert next(loop.dataloader_iterator) == 3
    assert _draws() == expected


def test_load_from_does_not_restore():
    hook = RandomStateHook()
    checkpoint = {}
    hook.before_save_checkpoint(None, checkpoint)
    _draws()
    batches = iter(range(3))
    loop = _Loop(iter=0, epoch=0, dataloader_iterator=batches)
    hook.after_load_checkpoint(None, checkpoint)
    hook.before_train(SimpleNamespace(train_loop=loop))
    assert loop.dataloader_iterator is batches


def test_validation_leaves_the_training_streams_where_they_were():
    hook = RandomStateHook()
    expected_state = capture_random_state()
    expected = _draws()
    restore_random_state(expected_state)
    hook.before_val(None)
    _draws()
    checkpoint = {}
    hook.before_save_checkpoint(None, checkpoint)  # save_best, in val
    hook.after_val(None)
    assert _draws() == expected
    restore_random_state(checkpoint['random_state'])
    assert _draws() == expected
