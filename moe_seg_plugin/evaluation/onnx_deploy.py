"""The deployment check of a segmentor, step by step: export it (and its
stock model) to ONNX, check each graph against eager PyTorch, optionally
quantize it to INT8, time every graph and evaluate them on the test set.

:func:`deploy` runs the steps for a :class:`Deployment` (what
``tools/deployment/export.py`` was asked for) and returns the figures as
a dict; :mod:`.onnx_report` turns them into lines.
"""
import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from mmengine.config import Config
from torch import Tensor, nn

#: Name -> (the tensor-mode module in eval mode, its ONNX file).
Models = Dict[str, Tuple[nn.Module, str]]


@dataclass
class Deployment:
    """What to export, check and measure.

    Args:
        config (str): The config file (named in the report).
        shape (tuple[int, int]): The graph's input size (H, W).
        out (str): The MoE model's ONNX file; the stock model's goes
            beside it as ``*_stock.onnx``.
        checkpoint (str, optional): The MoE model's weights (None: fresh).
        compare_stock (bool): Export the stock model (MoE wrappers
            removed) too.
        stock_checkpoint (str, optional): The stock model's weights (None:
            fresh ones, left out of the evaluation).
        capacity_factor (float, optional): Of every MoE layer (None: its
            own, else N / k).
        int8 (bool): Quantize each graph to INT8 as well.
        calib (int): Training images to calibrate INT8 on.
        evaluate (bool): Evaluate each graph on the test set.
        threads (int, optional): onnxruntime's intra-op threads.
        runs (int): Timed rounds per latency.
    """
    config: str
    shape: Tuple[int, int]
    out: str
    checkpoint: Optional[str] = None
    compare_stock: bool = False
    stock_checkpoint: Optional[str] = None
    capacity_factor: Optional[float] = None
    int8: bool = False
    calib: int = 32
    evaluate: bool = False
    threads: Optional[int] = None
    runs: int = 5


def stock_onnx_path(out: str) -> str:
    """The stock model's ONNX file beside the MoE model's ``out``."""
    return osp.splitext(out)[0] + '_stock.onnx'


def deployment_models(cfg: Config, job: Deployment) -> Models:
    """The models to export in tensor mode, eval mode, weights loaded
    once each checkpoint is checked to fit its model.

    Args:
        cfg (Config): The MoE model's config.
        job (Deployment): The checkpoints, files and ``compare_stock``.

    Returns:
        dict: ``'MoE'`` (and ``'stock'``) -> (module, ONNX file).
    """
    from ..models.stock import stock_config
    from .flops import inference_model
    from .onnx_export import TensorMode
    models = {
        'MoE': (TensorMode(inference_model(cfg, job.checkpoint)).eval(),
                job.out)
    }
    if job.compare_stock:
        stock = inference_model(stock_config(cfg), job.stock_checkpoint)
        models['stock'] = (TensorMode(stock).eval(),
                           stock_onnx_path(job.out))
    return models


def export_model(module: nn.Module, path: str, job: Deployment,
                 inputs: List[Tensor], plans: list,
                 images: Tuple[List[Tensor], List[Tensor]]) -> dict:
    """Export one model, check it and (with ``job.int8``) quantize it.

    Args:
        module (nn.Module): The tensor-mode model, eval mode.
        path (str): Its ONNX file.
        job (Deployment): The input size, ``int8`` and ``threads``.
        inputs (list[Tensor]): Probe inputs (1, 3, H, W) to check on.
        plans (list[CapacityPlan]): The plans of the model's MoE layers.
        images (tuple): Calibration and test images (1, 3, H, W) for INT8.

    Returns:
        dict: ``onnx`` (the file), ``check`` (see ``check_export``),
        ``sessions`` (precision -> onnxruntime session) and ``int8`` (the
        quantization's figures, or None).
    """
    from .onnx_export import check_export, cpu_session, export_onnx
    from .onnx_quantize import quantize_and_check
    export_onnx(module, job.shape, path)
    fp32 = cpu_session(path, job.threads)
    result = dict(onnx=path, check=check_export(module, fp32, inputs, plans),
                  sessions=dict(fp32=fp32), int8=None)
    if job.int8:
        session, result['int8'] = quantize_and_check(path, *images,
                                                     job.threads)
        result['sessions']['int8'] = session
    return result


def quantization_images(cfg: Config, job: Deployment
                        ) -> Tuple[List[Tensor], List[Tensor]]:
    """Calibration (training set) and test images, ``job.calib`` of each
    at the graph's size, or none without ``job.int8``."""
    from .onnx_eval import preprocessed_images
    if not job.int8:
        return [], []
    return (preprocessed_images(cfg, 'train_dataloader', job.calib,
                                job.shape),
            preprocessed_images(cfg, 'test_dataloader', job.calib,
                                job.shape))


def deploy(cfg: Config, job: Deployment) -> dict:
    """Export, check, quantize, time and evaluate the job's models.

    Args:
        cfg (Config): The MoE model's config.
        job (Deployment): What to do.

    Returns:
        dict: ``config``, ``shape``, ``calib`` (calibration images used),
        ``models`` (name -> :func:`export_model`'s result), ``layers``
        (the MoE model's capacity plans as dicts), ``latency`` (see
        :func:`time_graphs`) and, with ``job.evaluate``, ``eval`` (see
        :func:`evaluate_exported`).
    """
    from .onnx_export import plan_capacity, probe_inputs
    os.makedirs(osp.dirname(osp.abspath(job.out)), exist_ok=True)
    images = quantization_images(cfg, job)
    inputs = probe_inputs(job.shape)
    models = deployment_models(cfg, job)
    result = dict(config=job.config, shape=list(job.shape), models={},
                  calib=len(images[0]), layers=[])
    for key, (module, path) in models.items():
        plans = plan_capacity(module, job.capacity_factor)
        result['models'][key] = export_model(module, path, job, inputs,
                                             plans, images)
        if key == 'MoE':
            result['layers'] = [vars(plan) for plan in plans]
    result['latency'] = time_graphs(models, result['models'], inputs[0],
                                    job.runs)
    if job.evaluate:
        result['eval'] = evaluate_exported(cfg, models, result['models'],
                                           job)
    return result


def time_graphs(models: Models, exported: dict, x: Tensor,
                runs: int) -> Dict[str, float]:
    """Median latency (ms) of every graph and of the MoE model in eager
    PyTorch, timed in alternating rounds.

    Args:
        models (dict): From :func:`deployment_models`.
        exported (dict): Name -> :func:`export_model`'s result.
        x (Tensor): The input (1, 3, H, W).
        runs (int): Timed rounds.

    Returns:
        dict[str, float]: ``'<name> ONNX <PRECISION>'`` and ``'MoE
        PyTorch'`` -> median milliseconds.
    """
    import torch

    from .latency import compare_latency
    calls = {}
    for key, done in exported.items():
        for precision, session in done['sessions'].items():
            feed = {session.get_inputs()[0].name: x.numpy()}
            calls[f'{key} ONNX {precision.upper()}'] = (
                lambda session=session, feed=feed: session.run(None, feed))
    moe = models['MoE'][0]
    calls['MoE PyTorch'] = lambda: moe(x)
    with torch.no_grad():
        times = compare_latency(calls, warmup=1, repeats=runs)
    return {name: stats['median_ms'] for name, stats in times.items()}


def evaluate_exported(cfg: Config, models: Models, exported: dict,
                      job: Deployment) -> Dict[str, Dict[str, float]]:
    """The test set's metrics per graph: each model in PyTorch, then its
    ONNX FP32 (and INT8) graphs; the stock model's only with its
    checkpoint.

    Args:
        cfg (Config): The MoE model's config (its test loop and metric).
        models (dict): From :func:`deployment_models`.
        exported (dict): Name -> :func:`export_model`'s result.
        job (Deployment): The shape, ``out`` (the test run's work dir is
            ``<out without .onnx>_eval``) and ``stock_checkpoint``.

    Returns:
        dict: Graph name -> the evaluator's metrics.
    """
    from .onnx_eval import (evaluate_graphs, module_graph, session_graph,
                            test_runner)
    runner = test_runner(cfg, osp.splitext(job.out)[0] + '_eval')
    graphs = {}
    for key, done in exported.items():
        if key == 'stock' and job.stock_checkpoint is None:
            continue
        graphs[f'{key} PyTorch'] = module_graph(models[key][0])
        for precision, session in done['sessions'].items():
            graphs[f'{key} ONNX {precision.upper()}'] = session_graph(session)
    return evaluate_graphs(runner, graphs, job.shape)


__all__ = [
    'Deployment', 'deploy', 'deployment_models', 'export_model',
    'quantization_images', 'time_graphs', 'evaluate_exported',
    'stock_onnx_path'
]
