"""Checking, when a model is built, that every MoE layer's grid or patch
size fits the feature map it gets at the config's crop size.

At run time a grid or patch size larger than a layer's output is clipped
(inputs of any size work). At the training crop size that would silently
train another split than the config names, so it is refused up front: the
layers' input
sizes are found by running the model on a *fake* image of the crop size
(``FakeTensorMode``: shapes only, no compute, no memory), with each MoE
layer standing in as its first expert.
"""
from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from torch import nn

from ..moe import PatchConvMoE
from .injection import moe_layers

Size = Tuple[int, int]


@contextmanager
def _recording_inputs(layers: Dict[str, PatchConvMoE],
                      sizes: Dict[str, Size]) -> Iterator[None]:
    """Each layer records its input size and runs as its first expert."""

    def stand_in(path: str, layer: PatchConvMoE):

        def forward(x):
            sizes[path] = (int(x.shape[2]), int(x.shape[3]))
            return layer.experts[0](x)

        return forward

    for path, layer in layers.items():
        layer.forward = stand_in(path, layer)
    try:
        yield
    finally:
        for layer in layers.values():
            del layer.forward


def moe_input_sizes(model: nn.Module, image_size: Sequence[int],
                    in_channels: int = 3) -> Dict[str, Size]:
    """Input size (H, W) of every PatchConvMoE layer of a segmentor for
    one image of ``image_size``, by shape propagation.

    Args:
        model (nn.Module): A segmentor with ``_forward`` (tensor mode).
        image_size (tuple[int, int]): (H, W) of the image.
        in_channels (int): Image channels. Default: 3.

    Returns:
        dict[str, tuple[int, int]]: Per layer path, its input (H, W).
    """
    from torch._subclasses.fake_tensor import FakeTensorMode
    layers = moe_layers(model)
    sizes: Dict[str, Size] = {}
    training = model.training
    model.eval()  # no running statistics touched
    try:
        with _recording_inputs(layers, sizes), FakeTensorMode(
                allow_non_fake_inputs=True):
            model._forward(torch.empty(1, in_channels, *image_size))
    finally:
        model.train(training)
    return sizes


def output_size(layer: PatchConvMoE, height: int, width: int) -> Size:
    """The replaced layer's output (Ho, Wo) for an input of that size."""
    return layer.rows.sizes(height)[-1], layer.cols.sizes(width)[-1]


def check_grids_fit(model: nn.Module,
                    crop_size: Optional[Sequence[int]],
                    in_channels: int = 3) -> None:
    """Refuse MoE layers whose grid or patch size does not fit their map
    at the crop size.

    Args:
        model (nn.Module): The built segmentor.
        crop_size (tuple[int, int], optional): The training crop (H, W),
            e.g. ``data_preprocessor.size``; None skips the check.
        in_channels (int): Image channels. Default: 3.

    Raises:
        ValueError: Naming the layer, its grid (patch size), its output
            at the crop size and the largest grid (patch size) that fits.
    """
    layers = moe_layers(model)
    if not layers or not crop_size or not hasattr(model, '_forward'):
        return
    try:
        sizes = moe_input_sizes(model, tuple(crop_size), in_channels)
    except Exception as exc:  # a model shape propagation cannot run
        print_log(
            f'MoE grid check skipped: the model could not run on a fake '
            f'{tuple(crop_size)} image ({type(exc).__name__}: {exc}); grids '
            'or patch sizes larger than a layer\'s map are clipped at run '
            'time',
            logger='current')
        return
    for path, layer in layers.items():
        if path not in sizes:
            continue
        out = output_size(layer, *sizes[path])
        if min(out) < 1:
            raise ValueError(
                f'{path}: at the crop size {tuple(crop_size)} the layer '
                f'gets a {sizes[path]} map and gives an empty output')
        _check_split(path, 'grid', layer.grid, out, tuple(crop_size))
        _check_split(path, 'patch_size', layer.patch_size, out,
                     tuple(crop_size))


def _check_split(path: str, key: str, split: Optional[Size], out: Size,
                 crop_size: Size) -> None:
    """Refuse a grid or patch size larger than the layer's output.

    Args:
        path (str): The layer's path in the model.
        key (str): 'grid' or 'patch_size'.
        split (tuple[int, int], optional): Its value (None: not used).
        out (tuple[int, int]): The layer's output at the crop size.
        crop_size (tuple[int, int]): The crop size.

    Raises:
        ValueError: Naming the layer, the setting, the output and the
            largest value that fits.
    """
    if split and (split[0] > out[0] or split[1] > out[1]):
        other = 'patch_size' if key == 'grid' else 'grid'
        raise ValueError(
            f'{path}: {key} {split} does not fit the layer\'s output {out} '
            f'at the crop size {crop_size}; use a {key} of at most {out} '
            f'(rows, cols), or {other}')


def check_model_grids(model: nn.Module) -> None:
    """:func:`check_grids_fit` at the model's own crop size (its data
    preprocessor's ``size``), once per model; wrappers (DDP) unwrapped.

    Raises:
        ValueError: As :func:`check_grids_fit`.
    """
    model = getattr(model, 'module', model)
    if getattr(model, '_moe_grids_checked', False):
        return
    preprocessor = getattr(model, 'data_preprocessor', None)
    mean = getattr(preprocessor, 'mean', None)
    channels = mean.shape[0] if isinstance(mean, torch.Tensor) else 3
    check_grids_fit(model, getattr(preprocessor, 'size', None), channels)
    model._moe_grids_checked = True
