"""Inference latency of a segmentor config, optionally against its stock
model: the tensor-mode forward (eval, no_grad, batch 1, random input) of
each model, timed in alternating rounds of one process
(:func:`~.latency.compare_latency`)."""
import os
from typing import Callable, Dict, Optional, Sequence

import torch

from .latency import compare_latency, latency_ratio

#: What is timed, as the report says it.
TIMED = 'tensor-mode forward, eval, torch.no_grad, batch 1'


def _check_checkpoints(*paths: Optional[str]) -> None:
    """Raise FileNotFoundError for a given checkpoint that is missing."""
    for path in paths:
        if path and not os.path.isfile(path):
            raise FileNotFoundError(f'checkpoint {path!r} does not exist')


def model_configs(config: str, checkpoint: Optional[str] = None,
                  baseline: Optional[str] = None,
                  baseline_checkpoint: Optional[str] = None,
                  vs_stock: bool = False,
                  cfg_options: Optional[dict] = None) -> Dict[str, tuple]:
    """The models to time: 'model', and 'stock' with a baseline.

    Args:
        config (str): The model's config file.
        checkpoint (str, optional): Its weights (default: fresh).
        baseline (str, optional): A stock config timed alongside.
        baseline_checkpoint (str, optional): The baseline's weights.
        vs_stock (bool): Time the stock model derived from ``config``
            (MoE wrappers removed) alongside it.
        cfg_options (dict, optional): Overrides of ``config``.

    Returns:
        dict: name: (Config, checkpoint or None).
    """
    from ..engine import load_config
    from ..models.stock import count_moe_wrappers, stock_config
    if baseline_checkpoint and not (baseline or vs_stock):
        raise ValueError('--baseline-checkpoint: give --baseline or '
                         '--vs-stock too')
    _check_checkpoints(checkpoint, baseline_checkpoint)
    cfg = load_config(config, cfg_options)
    configs = {'model': (cfg, checkpoint)}
    if baseline:
        configs['stock'] = (load_config(baseline), baseline_checkpoint)
    elif vs_stock:
        if not count_moe_wrappers(cfg.model):
            raise ValueError(f'--vs-stock: {config} has no MoE wrappers '
                             '(PatchMoEHead / PatchMoESegmentor)')
        configs['stock'] = (stock_config(cfg), baseline_checkpoint)
    return configs


def inference_runs(configs: Dict[str, tuple], shape: Sequence[int],
                   device: str) -> Dict[str, Callable[[], object]]:
    """One tensor-mode forward per model on the same random input
    (1, 3, H, W)."""
    from .flops import inference_model
    x = torch.randn(1, 3, *shape, device=device)
    runs = {}
    for name, (cfg, checkpoint) in configs.items():
        model = inference_model(cfg, checkpoint, device)
        runs[name] = (lambda model=model: model(x, mode='tensor'))
    return runs


def config_latency(configs: Dict[str, tuple], shape: Sequence[int],
                   warmup: int = 5, repeats: int = 20,
                   device: str = 'cpu') -> dict:
    """Time the models of :func:`model_configs` in alternating rounds.

    Args:
        configs (dict): :func:`model_configs`' answer.
        shape (tuple[int, int]): Input (H, W).
        warmup (int): Untimed rounds.
        repeats (int): Timed rounds.
        device (str): Where the models run.

    Returns:
        dict: ``shape``, ``device``, ``threads``, ``warmup``, ``repeats``,
        ``timed``, ``latency`` (name: stats) and with a stock model
        ``ratio`` and ``paired_ratio`` (model over stock).
    """
    if warmup < 0 or repeats < 1:
        raise ValueError('--warmup must be >= 0 and --repeats >= 1')
    runs = inference_runs(configs, shape, device)
    timings = compare_latency(runs, warmup, repeats, device)
    result = dict(shape=list(shape), device=str(device),
                  threads=torch.get_num_threads(), warmup=warmup,
                  repeats=repeats, timed=TIMED, latency=timings)
    if 'stock' in timings:
        result.update(latency_ratio(timings, 'model', 'stock'))
    return result
