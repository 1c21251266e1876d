"""MMEngine checkpoints load under torch's safe loading; other things not."""
import pickle

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn


class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, x, mode='loss'):
        return dict(loss=self.fc(x).pow(2).mean())


def _runner(work_dir, max_iters, **kwargs):
    data = [dict(x=torch.randn(2)) for _ in range(8)]
    return Runner(
        model=_Toy(), work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=data, batch_size=2,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False)),
        **kwargs)


def test_resume_and_load_mmengine_checkpoint(tmp_path):
    _runner(tmp_path, 2).train()
    checkpoint = torch.load(tmp_path / 'iter_2.pth')  # safe loading
    assert checkpoint['meta']['iter'] == 2
    buffer = checkpoint['message_hub']['log_scalars']['train/loss']
    assert buffer.mean() > 0
    resumed = _runner(tmp_path, 4, resume=True)
    resumed.train()
    assert resumed.iter == 4


class _Payload:

    def __init__(self, fn, *args):
        self.call = (fn, args)

    def __reduce__(self):
        return self.call


@pytest.mark.parametrize('payload', [
    _Payload(getattr, ConfigDict, '__init__'),
    _Payload(print, 'hello'),
])
def test_other_globals_are_still_refused(tmp_path, payload):
    path = tmp_path / 'evil.pth'
    torch.save({'x': payload}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
