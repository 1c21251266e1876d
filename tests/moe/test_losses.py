"""Balancing losses against hand-computed values."""
import math

import pytest
import torch

from moe_seg_plugin.moe import (MoEEntropyLoss, MoEImportanceLoss,
                                MoELoadLoss, MoESwitchLoss, MoEZLoss,
                                RoutingRecord, top_k_route)

N = 4


def _record(logits, top_k=1) -> RoutingRecord:
    return top_k_route(torch.as_tensor(logits, dtype=torch.float32), top_k)


def _balanced():
    """8 patches, each sure of one expert, every expert used twice."""
    return _record(20.0 * torch.eye(N).repeat(2, 1))


def _collapsed():
    """8 patches, all sure of expert 0."""
    logits = torch.zeros(8, N)
    logits[:, 0] = 20.0
    return _record(logits)


@pytest.mark.parametrize('loss,balanced,collapsed', [
    (MoEImportanceLoss, 0.0, N - 1.0),
    (MoESwitchLoss, 1.0, float(N)),
    (MoEEntropyLoss, -math.log(N), 0.0),
    (MoEZLoss, 400.0, 400.0),
])
def test_balanced_and_collapsed(loss, balanced, collapsed):
    fn = loss()
    assert fn(_balanced()).item() == pytest.approx(balanced, abs=1e-5)
    assert fn(_collapsed()).item() == pytest.approx(collapsed, abs=1e-5)


def test_two_patch_example():
    """P = [[.75, .25], [.4, .6]]; logits offset by 2 and -1."""
    probs = torch.tensor([[0.75, 0.25], [0.4, 0.6]])
    logits = probs.log() + torch.tensor([[2.0], [-1.0]])
    record = _record(logits)
    assert MoEImportanceLoss()(record).item() == pytest.approx(0.0225)
    # f = [.5, .5], mean P = [.575, .425]
    assert MoESwitchLoss()(record).item() == pytest.approx(1.0)

    def h(p):
        return -sum(x * math.log(x) for x in p)

    entropy = (h([.75, .25]) + h([.4, .6])) / 2 - h([.575, .425])
    assert MoEEntropyLoss()(record).item() == pytest.approx(entropy, abs=1e-6)
    assert MoEZLoss()(record).item() == pytest.approx((4 + 1) / 2, abs=1e-5)


def test_loss_weight_scales():
    record = _collapsed()
    assert MoESwitchLoss(loss_weight=0.5)(record).item() == pytest.approx(2)


def _phi(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_load_loss_smooth_estimator():
    clean = torch.tensor([[1.0, 0.0, -1.0]])
    noisy = torch.tensor([[1.5, 0.2, -2.0]])
    record = RoutingRecord(clean, clean.softmax(1), torch.tensor([[0]]),
                           torch.ones(1, 1), (1, 1, 1), 1,
                           noisy_logits=noisy, noise_std=1.0)
    # Expert 0 is in the top-1: threshold is the 2nd noisy value (0.2);
    # the others are out: threshold is the 1st (1.5).
    load = [_phi(1.0 - 0.2), _phi(0.0 - 1.5), _phi(-1.0 - 1.5)]
    mean = sum(load) / 3
    var = sum((x - mean)**2 for x in load) / 3
    got = MoELoadLoss()(record).item()
    assert got == pytest.approx(var / mean**2, rel=1e-5)


def test_load_loss_balanced_vs_collapsed():
    n, t = 4, 400
    gen = torch.Generator().manual_seed(0)
    balanced = torch.zeros(t, n)
    collapsed = torch.zeros(t, n)
    collapsed[:, 0] = 6.0
    values = []
    for clean in (balanced, collapsed):
        noisy = clean + torch.randn(t, n, generator=gen)
        experts = noisy.topk(2, 1).indices
        record = RoutingRecord(clean, clean.softmax(1), experts,
                               torch.full((t, 2), 0.5), (t, 1, 1), 2,
                               noisy_logits=noisy, noise_std=1.0)
        values.append(MoELoadLoss()(record).item())
    assert values[0] < 0.01 < 0.2 < values[1]


def test_load_loss_needs_noise():
    with pytest.raises(ValueError, match='noisy_gating'):
        MoELoadLoss()(_balanced())


def test_loss_names_contain_loss():
    names = {cls().loss_name for cls in (MoEImportanceLoss, MoELoadLoss,
                                         MoESwitchLoss, MoEEntropyLoss,
                                         MoEZLoss)}
    assert len(names) == 5 and all('loss' in n for n in names)
    with pytest.raises(ValueError, match='loss_name'):
        MoESwitchLoss(loss_name='moe_switch')
