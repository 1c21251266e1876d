"""Collective norms inside experts under data-parallel training.

Two gloo ranks route their patches differently; every expert's batch norm
is a CPU stand-in for SyncBN that issues an all-gather of its statistics
in forward and an all-reduce in backward, as torch's SyncBatchNorm does,
and records each call. Each collective also carries the caller's tag, so a
rank that pairs one expert's statistics with another's fails at once. The
ranks' sequences of collectives must be identical.
"""
import json
import os
from datetime import timedelta
from typing import List

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn

from moe_seg_plugin.moe import PatchConvMoE
from moe_seg_plugin.moe.distributed import has_collective_norm

NUM_EXPERTS = 4
#: Per rank and step: the experts each patch of the 2 x 3 x 3 grid takes.
#: Step 0 as reported: rank 0 chooses experts 0 and 2 (each on every patch,
#: the whole-map path), rank 1 experts 0, 1 and 2 (on windows). Expert 3 is
#: chosen by no rank. Step 1: rank 0 takes only expert 3 and 1 for a few
#: patches, rank 1 expert 2 everywhere.
ROUTES = {
    0: [[(0, 2)] * 18, [(1, 3)] * 16 + [(3, 1)] * 2],
    1: [[(0, 1), (1, 2), (2, 0)] * 6, [(2, 1)] * 18],
}


class StandInSyncBN(nn.SyncBatchNorm):
    """SyncBN on CPU: statistics all-gathered over the ranks in forward, an
    all-reduce in backward; each call recorded in ``log`` with its tag."""

    def __init__(self, channels: int, tag: int, log: List) -> None:
        super().__init__(channels)
        self.tag = tag
        self.log = log

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return super().forward(x)
        channels = x.shape[1]
        count = x.numel() // channels
        local = torch.cat([
            x.detach().sum(dim=(0, 2, 3)),
            x.detach().square().sum(dim=(0, 2, 3)),
            torch.tensor([float(count), float(self.tag)])
        ])
        gathered = [torch.empty_like(local) for _ in range(2)]
        dist.all_gather(gathered, local)
        self.log.append(['all_gather', self.tag, count])
        stats = torch.stack(gathered)
        tags = stats[:, -1].tolist()
        if tags != [float(self.tag)] * 2:
            raise RuntimeError(f'norm {self.tag} was paired with {tags}')
        total = stats[:, -2].sum().clamp_min(1)
        mean = stats[:, :channels].sum(0) / total
        var = stats[:, channels:2 * channels].sum(0) / total - mean**2
        x = _BackwardAllReduce.apply(x, self.tag, self.log)
        shape = (1, channels, 1, 1)
        out = (x - mean.view(shape)) / (var.view(shape) + self.eps).sqrt()
        return out * self.weight.view(shape) + self.bias.view(shape)


class _BackwardAllReduce(torch.autograd.Function):
    """Identity forward; backward all-reduces (as SyncBN's does) and
    checks that every rank is in the same norm."""

    @staticmethod
    def forward(ctx, x, tag, log):
        ctx.tag, ctx.log = tag, log
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        tags = [torch.zeros(1) for _ in range(2)]
        dist.all_gather(tags, torch.tensor([float(ctx.tag)]))
        ctx.log.append(['all_reduce', ctx.tag, grad.shape[0]])
        if [t.item() for t in tags] != [float(ctx.tag)] * 2:
            raise RuntimeError(f'backward of norm {ctx.tag} was paired with '
                               f'{[t.item() for t in tags]}')
        return grad, None, None


def _layer(log: List) -> PatchConvMoE:
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4),
                         nn.ReLU())
    layer = PatchConvMoE(conv, num_experts=NUM_EXPERTS, top_k=2,
                         grid=(3, 3), gate=dict(type='DoubleConvGAPGate'))
    tag = 0
    for parent in list(layer.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(parent, name,
                        StandInSyncBN(child.num_features, tag, log))
                tag += 1
    return layer


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=2,
                            timeout=timedelta(seconds=30))
    log: List = []
    calls = []
    all_reduce = dist.all_reduce

    def recorded_all_reduce(tensor, *args, **kwargs):
        calls.append(['all_reduce', list(tensor.shape)])
        return all_reduce(tensor, *args, **kwargs)

    dist.all_reduce = recorded_all_reduce
    layer = _layer(log).train()
    assert has_collective_norm(layer.experts)
    for step, routes in enumerate(ROUTES[rank]):
        bias = torch.zeros(len(routes), NUM_EXPERTS)
        for patch, chosen in enumerate(routes):
            bias[patch, list(chosen)] = torch.tensor([100.0, 50.0])
        hook = layer.gate.register_forward_hook(
            lambda m, args, out, bias=bias: out + bias)
        x = torch.randn(2, 3, 9, 12,
                        generator=torch.Generator().manual_seed(rank))
        out = layer(x)
        chosen = layer.last_routing.experts.tolist()
        assert [tuple(c) for c in chosen] == routes
        out.square().mean().backward()
        hook.remove()
        log.append(['step', step])
    grads_finite = all(
        p.grad is None or bool(torch.isfinite(p.grad).all())
        for p in layer.parameters())
    with open(os.path.join(out_dir, f'rank{rank}.json'), 'w') as f:
        json.dump(dict(log=log, calls=calls, finite=grads_finite), f)
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow
def test_ranks_issue_the_same_collectives_in_the_same_order(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / 'init'), str(tmp_path)),
             nprocs=2, join=True)
    ranks = [
        json.loads((tmp_path / f'rank{r}.json').read_text())
        for r in range(2)
    ]
    for rank in ranks:
        print(rank['log'])
        assert rank['finite']
    logs = [[entry[:2] for entry in rank['log']] for rank in ranks]
    assert logs[0] == logs[1]
    assert ranks[0]['calls'] == ranks[1]['calls']
    # One all-reduce of the N counts per forward.
    assert ranks[0]['calls'] == [['all_reduce', [NUM_EXPERTS]]] * 2
    # Expert norms (tags 1..4; 0 is the gate's) in expert order; expert 3
    # (tag 4) chosen by no rank in step 0 is skipped everywhere.
    forward = [tag for kind, tag in logs[0] if kind == 'all_gather']
    step0 = forward[:forward.index(0, 1)]
    assert step0 == [0, 1, 2, 3]
    # A rank without patches for an expert takes part with a zero count.
    counts = {(r, e[1]): e[2] for r, rank in enumerate(ranks)
              for e in rank['log'][:8] if e[0] == 'all_gather'}
    assert counts[(0, 2)] == 0  # rank 0 did not choose expert 1 in step 0
