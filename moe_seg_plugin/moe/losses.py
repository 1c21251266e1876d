"""Balancing losses on a routing record (formulas in
docs/en/advanced_guides/design.md).

Each loss is an ``nn.Module`` called with a :class:`RoutingRecord` and
returning ``loss_weight`` times its value; ``loss_name`` (which contains
'loss', so MMSeg sums it into the training loss) names it in loss dicts.
"""
import torch
from torch import Tensor, nn

from .registry import BALANCE_LOSSES
from .routing import RoutingRecord, count_values
from .statistics import cv_squared  # shared with the routing statistics


class BalanceLoss(nn.Module):
    """Common part of the balancing losses.

    Args:
        loss_weight (float): Factor on the loss. Default: 1.0.
        loss_name (str, optional): Key in loss dicts; must contain 'loss'.
    """

    default_name = 'loss_moe'

    def __init__(self, loss_weight: float = 1.0, loss_name: str = None):
        super().__init__()
        if (isinstance(loss_weight, bool)
                or not isinstance(loss_weight, (int, float))
                or not loss_weight >= 0):
            raise ValueError(
                f'balance_loss.loss_weight must be a number >= 0 (a negative '
                f'weight rewards collapse onto few experts), got '
                f'{loss_weight!r}')
        self.loss_weight = float(loss_weight)
        name = loss_name or self.default_name
        if 'loss' not in name:
            raise ValueError(f"balance_loss.loss_name must contain 'loss' "
                             f'(MMSeg sums only such keys), got {name!r}')
        #: Key in loss dicts.
        self.loss_name = name

    def value(self, record: RoutingRecord) -> Tensor:
        raise NotImplementedError

    def forward(self, record: RoutingRecord) -> Tensor:
        return self.loss_weight * self.value(record)


@BALANCE_LOSSES.register
class MoEImportanceLoss(BalanceLoss):
    """CV^2 of the experts' gate mass sum_t P_t (Shazeer et al. 2017)."""
    default_name = 'loss_moe_importance'

    def value(self, record: RoutingRecord) -> Tensor:
        return cv_squared(record.probs.sum(dim=0))


@BALANCE_LOSSES.register
class MoELoadLoss(BalanceLoss):
    """CV^2 of the smooth load estimate of noisy top-k (Shazeer et al. 2017).

    The load of expert i is sum_t Phi((clean_ti - threshold_ti) / sigma),
    where the threshold is the k-th highest noisy logit of patch t with
    expert i left out. Needs a record from noisy top-k routing.
    """
    default_name = 'loss_moe_load'

    def value(self, record: RoutingRecord) -> Tensor:
        if record.noisy_logits is None or not record.noise_std:
            raise ValueError(
                'MoELoadLoss needs noisy top-k routing: set noisy_gating=True '
                '(it is computed in training only)')
        k, n = record.top_k, record.num_experts
        if k >= n:
            return record.logits.new_zeros(())
        clean, noisy = record.logits.float(), record.noisy_logits.float()
        top = noisy.topk(k + 1, dim=1).values
        threshold_in = top[:, k:k + 1]
        threshold_out = top[:, k - 1:k]
        normal = torch.distributions.Normal(0.0, record.noise_std)
        prob_in = normal.cdf(clean - threshold_in)
        prob_out = normal.cdf(clean - threshold_out)
        chosen = noisy > threshold_in
        load = torch.where(chosen, prob_in, prob_out).sum(dim=0)
        return cv_squared(load)


@BALANCE_LOSSES.register
class MoESwitchLoss(BalanceLoss):
    """N * sum_i f_i * mean_t P_ti (Fedus et al. 2021): 1 balanced, N
    collapsed."""
    default_name = 'loss_moe_switch'

    def value(self, record: RoutingRecord) -> Tensor:
        # f_i: the fraction of patches whose first choice is expert i (no
        # gradient); p_i: the mean probability of expert i.
        patches, experts = record.probs.shape
        fraction = count_values(record.experts[:, 0], experts).to(
            record.probs.dtype) / patches
        return experts * (fraction * record.probs.mean(0)).sum()


@BALANCE_LOSSES.register
class MoEEntropyLoss(BalanceLoss):
    """mean_t H(P_t) - H(mean_t P_t): confident per patch, balanced overall
    (minimum -log N)."""
    default_name = 'loss_moe_entropy'

    def value(self, record: RoutingRecord) -> Tensor:
        log_probs = record.logits.float().log_softmax(dim=1)
        per_patch = -(log_probs.exp() * log_probs).sum(dim=1).mean()
        mean = log_probs.exp().mean(dim=0)
        overall = -(mean * mean.clamp_min(1e-12).log()).sum()
        return per_patch - overall


@BALANCE_LOSSES.register
class MoEZLoss(BalanceLoss):
    """mean_t logsumexp(logits_t)^2 (Zoph et al. 2022, ST-MoE)."""
    default_name = 'loss_moe_z'

    def value(self, record: RoutingRecord) -> Tensor:
        return record.logits.float().logsumexp(dim=1).pow(2).mean()

