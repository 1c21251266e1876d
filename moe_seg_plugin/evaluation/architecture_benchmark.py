"""Parameters, FLOPs and latency of every shipped architecture: the
PatchConvMoE config against its stock baseline.

Three measurements per architecture, each timing its models in the same
alternating rounds of one process (:func:`~.latency.compare_latency`):

- :func:`measure_pair`: parameters, FLOPs (actual and all experts) and the
  tensor-mode forward of the MoE and the stock model;
- :func:`measure_floor_pair`: the MoE model against its top-k floor
  (:mod:`.floor`), in eval and as a training step;
- :func:`measure_family`: each value of an ablation family on the
  architecture's Cityscapes MoE config, beside the stock model.

:mod:`.architecture_tables` prints them.
"""
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from .latency import compare_latency, latency_ratio

#: name: (MoE config, stock baseline), Cityscapes 512x1024.
ARCHITECTURES = {
    'deeplabv3plus_r18': (
        'configs/deeplabv3plus/patchmoe_deeplabv3plus_r18-d8_4xb2-80k_'
        'cityscapes-512x1024.py',
        'configs/deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_'
        'cityscapes-512x1024.py'),
    'pspnet_r18': (
        'configs/pspnet/patchmoe_pspnet_r18-d8_4xb2-80k_cityscapes-512x1024'
        '.py',
        'configs/pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'),
    'lraspp': (
        'configs/lraspp/patchmoe_lraspp_m-v3-d8_4xb4-160k_cityscapes-'
        '512x1024.py',
        'configs/lraspp/lraspp_m-v3-d8_4xb4-160k_cityscapes-512x1024.py'),
    'unet': (
        'configs/unet/patchmoe_unet-s5-d16_fcn_4xb4-160k_cityscapes-512x1024'
        '.py',
        'configs/unet/unet-s5-d16_fcn_4xb4-160k_cityscapes-512x1024.py'),
    'erfnet': (
        'configs/erfnet/patchmoe_erfnet_fcn_4xb4-160k_cityscapes-512x1024.py',
        'configs/erfnet/erfnet_fcn_4xb4-160k_cityscapes-512x1024.py'),
    'enet': ('configs/enet/patchmoe_enet_4xb4-160k_cityscapes-512x1024.py',
             'configs/enet/enet_4xb4-160k_cityscapes-512x1024.py'),
}
#: Batch of the timed training step (floor): 1, but 2 for DeepLabv3+ and
#: PSPNet, whose image pooling and 1x1 pyramid level normalise one value per
#: channel at batch 1, which batch norm refuses in training.
TRAIN_BATCH = {'deeplabv3plus_r18': 2, 'pspnet_r18': 2}


@dataclass
class Timing:
    """How the models are timed: device, untimed and timed rounds, and
    whether at all (``latency=False``: parameters and FLOPs only)."""
    device: str = 'cpu'
    warmup: int = 2
    repeats: int = 10
    latency: bool = True

    def check(self) -> None:
        """Raise ValueError for impossible round counts."""
        if self.warmup < 0 or self.repeats < 1:
            raise ValueError('--warmup must be >= 0 and --repeats >= 1')


def time_models(models: Dict[str, nn.Module], timing: Timing,
                shape: Sequence[int]) -> dict:
    """Every model's tensor-mode forward on one input (1, 3, H, W), in the
    same alternating rounds.

    Returns:
        dict: Per model, :func:`~.latency.latency_stats`.
    """
    x = torch.randn(1, 3, *shape, device=timing.device)
    runs = {key: (lambda model=model: model(x, mode='tensor'))
            for key, model in models.items()}
    return compare_latency(runs, timing.warmup, timing.repeats,
                           timing.device)


def measure_pair(name: str, timing: Timing, shape: Sequence[int]) -> dict:
    """Every figure of one architecture's MoE/stock pair.

    Args:
        name (str): A key of :data:`ARCHITECTURES`.
        timing (Timing): How to time.
        shape (tuple[int, int]): Input (H, W).

    Returns:
        dict: ``arch``, the configs, ``moe`` and ``stock`` (complexity),
        ``increase_pct``, ``layer_shares``; with latency ``latency``,
        ``ratio`` and ``paired_ratio``.
    """
    from ..engine import load_config
    from .flops import (analyze_model, compare_complexity, inference_model,
                        layer_shares)
    moe_path, stock_path = ARCHITECTURES[name]
    models = {key: inference_model(load_config(path), device=timing.device)
              for key, path in (('moe', moe_path), ('stock', stock_path))}
    figures = {key: analyze_model(model, shape)
               for key, model in models.items()}
    result = dict(
        arch=name, moe_config=moe_path, stock_config=stock_path,
        moe=figures['moe'].to_dict(), stock=figures['stock'].to_dict(),
        increase_pct=compare_complexity(figures['moe'], figures['stock']),
        layer_shares=layer_shares(figures['moe'], figures['stock']))
    if timing.latency:
        result['latency'] = time_models(models, timing, shape)
        result.update(latency_ratio(result['latency'], 'moe', 'stock'))
    return result


def measure_floor_pair(name: str, timing: Timing,
                       shape: Sequence[int]) -> dict:
    """One architecture's MoE/stock latency against its floor, in eval
    (batch 1) and as a training step (batch :data:`TRAIN_BATCH`).

    Returns:
        dict: ``arch``, ``train_batch``, and ``eval`` and ``train``:
        :func:`~.floor.measure_floor`'s figures.
    """
    from ..engine import load_config
    from .floor import measure_floor
    from .flops import inference_model
    moe_path, stock_path = ARCHITECTURES[name]
    torch.manual_seed(0)
    moe = inference_model(load_config(moe_path), device=timing.device)
    stock = inference_model(load_config(stock_path), device=timing.device)
    batches = (('eval', 1), ('train', TRAIN_BATCH.get(name, 1)))
    return dict(arch=name, train_batch=batches[1][1], **{
        mode: measure_floor(
            moe, stock, torch.randn(batch, 3, *shape, device=timing.device),
            train=mode == 'train', warmup=timing.warmup,
            repeats=timing.repeats)
        for mode, batch in batches
    })


def family_arch(name: str) -> str:
    """The ablation families' arch key of an architecture here (the one
    whose Cityscapes MoE config is the same file)."""
    from ..sweep.family import arch_config, arch_names
    moe_path = os.path.abspath(ARCHITECTURES[name][0])
    for arch in arch_names():
        if os.path.abspath(arch_config(arch, 'cityscapes')) == moe_path:
            return arch
    raise ValueError(f'{name}: no arch of configs/ablations/families/'
                     f'_archs.py has the config {ARCHITECTURES[name][0]}')


def family_models(name: str, family, values: List[str]
                  ) -> Dict[str, list]:
    """The run specs of the stock model and of each runnable value on one
    architecture, and why the other values cannot run there.

    Returns:
        dict: ``specs`` (stock first) and ``skipped`` (value: reason).
    """
    from ..sweep.family import (arch_config, arch_table, expand,
                                unavailable_reason)
    from ..sweep.spec import BASELINE, RunSpec
    arch, table = family_arch(name), arch_table()
    skipped = {}
    for value in values:
        reason = unavailable_reason(arch, family.values[value], table)
        if reason:
            skipped[value] = reason
    runnable = [value for value in values if value not in skipped]
    specs = [RunSpec(family.name, arch, BASELINE, 0,
                     arch_config(arch, 'cityscapes', table))]
    if runnable:
        specs += [spec for spec in expand(family, [arch], [0], 'cityscapes',
                                          runnable) if not spec.baseline]
    return dict(specs=specs, skipped=skipped)


def measure_family(name: str, timing: Timing, shape: Sequence[int],
                   family_name: str,
                   values: Optional[List[str]] = None) -> dict:
    """Each value of an ablation family on one architecture, with the
    stock model: parameters, FLOPs, latency in the same rounds.

    Returns:
        dict: ``arch``, ``family``, ``figures`` (value: complexity, the
        stock model first), ``skipped`` (value: reason) and with latency
        ``latency`` (value: stats).
    """
    from ..sweep.family import load_family, run_config
    from .flops import analyze_model, inference_model
    family = load_family(family_name)
    found = family_models(name, family, family.select(values))
    models = {}
    for spec in found['specs']:
        torch.manual_seed(0)
        models[spec.value] = inference_model(run_config(spec),
                                             device=timing.device)
    figures = {key: analyze_model(model, shape).to_dict()
               for key, model in models.items()}
    result = dict(arch=name, family=family.name, figures=figures,
                  skipped=found['skipped'])
    if timing.latency:
        result['latency'] = time_models(models, timing, shape)
    return result
