"""Evaluate exported graphs on a config's test set with MMSeg's metric.

As MMDeploy's test tool does for a backend: the config's test loop (its
dataloader, data preprocessor, whole or slide inference, post-processing
and ``test_evaluator``, e.g. ``IoUMetric``) runs unchanged, except that the
segmentor's ``encode_decode`` (image -> logits at the input size) runs a
graph: an onnxruntime session, or the eager tensor-mode module for the
PyTorch row. A graph has one input size; an input of another size is
resized to it and its logits go back to the input's size through the
decode head's own ``predict_by_feat``.

Also the images a quantizer calibrates on: a data set's images through the
test pipeline and the data preprocessor (no augmentation).
"""
import contextlib
import copy
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from mmengine.config import Config
from torch import Tensor, nn

from ..engine.errors import SetupError

#: A graph as the evaluation runs it: image (1, 3, H, W) -> logits.
Graph = Callable[[Tensor], Tensor]


def session_graph(session) -> Graph:
    """An onnxruntime session as a :data:`Graph` (its first output)."""
    name = session.get_inputs()[0].name

    def run(image: Tensor) -> Tensor:
        out = session.run(None, {name: image.cpu().numpy()})[0]
        return torch.from_numpy(np.asarray(out))

    return run


def module_graph(module: nn.Module) -> Graph:
    """An eager tensor-mode module as a :data:`Graph` (no autograd)."""

    def run(image: Tensor) -> Tensor:
        with torch.no_grad():
            return module(image)

    return run


@contextlib.contextmanager
def graph_inference(segmentor: nn.Module, graph: Graph,
                    shape: Tuple[int, int]) -> Iterator[None]:
    """Within the block, ``segmentor``'s ``encode_decode`` runs ``graph``
    image by image (inputs resized to ``shape`` where they differ).

    Args:
        segmentor (nn.Module): An MMSeg ``EncoderDecoder``.
        graph (Graph): The graph.
        shape (tuple[int, int]): The graph's input size (H, W).
    """
    from mmseg.models.utils import resize

    def encode_decode(inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        images = inputs
        if tuple(inputs.shape[2:]) != tuple(shape):
            images = resize(inputs, size=tuple(shape), mode='bilinear',
                            align_corners=False)
        logits = torch.cat([graph(image[None]) for image in images])
        return segmentor.decode_head.predict_by_feat(
            logits.to(inputs.device), batch_img_metas)

    segmentor.encode_decode = encode_decode  # an instance attribute
    try:
        yield
    finally:
        del segmentor.encode_decode


def test_runner(cfg: Config, work_dir: str):
    """A Runner for the config's test loop alone: no checkpoint to load and
    no custom hooks (the graphs stand in for the model).

    Raises:
        FileNotFoundError: If the test data cannot give data (naming the
            key and folder).
    """
    from mmengine.runner import Runner

    from ..engine.run_setup import check_data_roots
    cfg = copy.deepcopy(cfg)
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper',
                'param_scheduler', 'val_dataloader', 'val_cfg',
                'val_evaluator', 'load_from'):
        cfg[key] = None
    cfg.resume = False
    cfg.custom_hooks = []
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    check_data_roots(cfg, ['test_dataloader'])
    return Runner.from_cfg(cfg)


def evaluate_graphs(runner, graphs: Dict[str, Graph],
                    shape: Tuple[int, int]) -> Dict[str, Dict[str, float]]:
    """The test loop once per graph.

    Args:
        runner (Runner): From :func:`test_runner`.
        graphs (dict[str, Graph]): Name -> graph.
        shape (tuple[int, int]): The graphs' input size.

    Returns:
        dict: Per name, the evaluator's metrics (e.g. ``mIoU``, ``aAcc``).
    """
    segmentor = runner.model
    loop = runner.test_loop
    results = {}
    runner.call_hook('before_run')  # the logger's files
    try:
        for name, graph in graphs.items():
            with graph_inference(segmentor, graph, shape):
                results[name] = dict(loop.run())
    finally:
        runner.call_hook('after_run')
    return results


def test_input_shape(cfg: Config) -> Tuple[int, int]:
    """The size the segmentor's ``encode_decode`` sees on the test set:
    the crop size in slide inference, else the first test image after the
    test pipeline and the data preprocessor.

    Raises:
        FileNotFoundError: If the test data cannot give data.
    """
    test_cfg = cfg.model.get('test_cfg') or {}
    if test_cfg.get('mode', 'whole') == 'slide':
        return tuple(int(v) for v in test_cfg['crop_size'])
    (image, ) = preprocessed_images(cfg, 'test_dataloader', 1)
    return tuple(image.shape[2:])


def preprocessed_images(cfg: Config, loader: str, count: int,
                        shape: Optional[Tuple[int, int]] = None
                        ) -> List[Tensor]:
    """``count`` images of a loader's data set spread over it, through the
    test loader's pipeline and the data preprocessor (no augmentation).

    Args:
        cfg (Config): The config.
        loader (str): 'train_dataloader' (calibration) or
            'test_dataloader'.
        count (int): How many (at most the data set's size).
        shape (tuple[int, int], optional): Resize each to this size.

    Returns:
        list[Tensor]: Images (1, 3, H, W), normalised as the model takes
        them.

    Raises:
        FileNotFoundError: If the data set cannot give data.
        SetupError: If it has no images.
    """
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmseg.models.utils import resize
    from mmseg.registry import DATASETS, MODELS

    from ..engine.run_setup import check_data_roots
    check_data_roots(cfg, [loader])
    init_default_scope('mmseg')
    dataset_cfg = copy.deepcopy(cfg[loader].dataset)
    # The test loop's own pipeline (what --cfg-options made of it).
    dataset_cfg.pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    dataset = DATASETS.build(dataset_cfg)
    if len(dataset) == 0:
        raise SetupError(f'{loader}.dataset: no images')
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    step = max(1, len(dataset) // max(1, count))
    images = []
    for index in range(0, len(dataset), step)[:count]:
        data = preprocessor(pseudo_collate([dataset[index]]), False)
        image = data['inputs']
        if shape is not None and tuple(image.shape[2:]) != tuple(shape):
            image = resize(image, size=tuple(shape), mode='bilinear',
                           align_corners=False)
        images.append(image)
    return images


__all__ = [
    'Graph', 'session_graph', 'module_graph', 'graph_inference',
    'test_runner', 'evaluate_graphs', 'test_input_shape',
    'preprocessed_images'
]
