"""Spatial geometry of the convolution a PatchConvMoE layer replaces.

A replaced module is read as a chain of *stages*: convolutions (``nn.Conv2d``
or an mmcv ``ConvModule``, recognised by duck typing so the core needs no
mmcv) and pixel-wise layers (norms that use running statistics in eval,
activations, dropout). A ``DepthwiseSeparableConvModule`` is its depthwise and
pointwise stages; an ``nn.Sequential`` is its children's stages in order.
From the chain follow the output size for any input size and the window
(input rows/columns plus halo) every output pixel depends on.
"""
from dataclasses import dataclass
from functools import cached_property
from typing import List, Sequence, Tuple

from torch import nn

PIXELWISE_TYPES = (
    nn.modules.batchnorm._BatchNorm,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU,
    nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid,
    nn.Tanh, nn.Softplus, nn.Identity,
    nn.Dropout, nn.Dropout2d,
)


@dataclass(frozen=True)
class AxisGeometry:
    """Geometry of one stage along one axis (rows or columns).

    Args:
        kernel (int): Kernel size.
        stride (int): Stride.
        dilation (int): Dilation.
        pad_before (int): Zero padding before the first pixel.
        pad_after (int): Zero padding after the last pixel.
    """
    kernel: int = 1
    stride: int = 1
    dilation: int = 1
    pad_before: int = 0
    pad_after: int = 0

    @property
    def extent(self) -> int:
        """Input pixels one output pixel sees: dilation * (kernel - 1) + 1."""
        return self.dilation * (self.kernel - 1) + 1

    def out_size(self, size: int) -> int:
        """Output length for an input of ``size`` pixels (may be <= 0)."""
        span = size + self.pad_before + self.pad_after - self.extent
        return span // self.stride + 1 if span >= 0 else 0


@dataclass(frozen=True)
class Stage:
    """One step of the chain: the module and its geometry per axis."""
    module: nn.Module
    rows: AxisGeometry
    cols: AxisGeometry

    @cached_property
    def pads(self) -> bool:
        """Whether this stage reads zero padding around its input."""
        return any((self.rows.pad_before, self.rows.pad_after,
                    self.cols.pad_before, self.cols.pad_after))


@dataclass(frozen=True)
class ChainAxis:
    """The whole chain along one axis, composed from its stages.

    Output pixel ``o`` reads input pixels ``o * stride - pad_before`` to
    ``o * stride - pad_before + extent - 1``.
    """
    stages: Tuple[AxisGeometry, ...]

    @property
    def stride(self) -> int:
        total = 1
        for s in self.stages:
            total *= s.stride
        return total

    @property
    def pad_before(self) -> int:
        total, scale = 0, 1
        for s in self.stages:
            total += s.pad_before * scale
            scale *= s.stride
        return total

    @property
    def extent(self) -> int:
        total, scale = 1, 1
        for s in self.stages:
            total += (s.extent - 1) * scale
            scale *= s.stride
        return total

    def sizes(self, size: int) -> List[int]:
        """Output length after each stage for an input of ``size`` pixels."""
        out = []
        for s in self.stages:
            size = s.out_size(size)
            out.append(size)
        return out


def _pair(value) -> Tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _conv_axes(conv: nn.Conv2d, where: str) -> Tuple[AxisGeometry, ...]:
    if conv.padding_mode != 'zeros':
        raise ValueError(
            f'module: {where} uses padding_mode={conv.padding_mode!r}; '
            "PatchConvMoE supports padding_mode='zeros' only")
    kernel, stride, dilation = (_pair(conv.kernel_size), _pair(conv.stride),
                                _pair(conv.dilation))
    axes = []
    for i in range(2):
        if conv.padding == 'valid':
            before = after = 0
        elif conv.padding == 'same':
            total = dilation[i] * (kernel[i] - 1)
            before, after = total // 2, total - total // 2
        else:
            before = after = _pair(conv.padding)[i]
        axes.append(
            AxisGeometry(kernel[i], stride[i], dilation[i], before, after))
    return tuple(axes)


def _conv_module_stage(module: nn.Module, where: str) -> Stage:
    """Stage of an mmcv ``ConvModule`` (conv, then optional norm and act)."""
    order = tuple(getattr(module, 'order', ('conv', 'norm', 'act')))
    if order[0] != 'conv':
        raise ValueError(
            f'module: {where} applies {order} in that order; PatchConvMoE '
            'needs the convolution first')
    if getattr(module, 'with_explicit_padding', False):
        raise ValueError(
            f'module: {where} pads with a separate padding layer; '
            "PatchConvMoE supports zero padding only")
    norm_name = getattr(module, 'norm_name', None)
    if getattr(module, 'with_norm', False) and norm_name:
        norm = getattr(module, norm_name)
        if not isinstance(norm, nn.modules.batchnorm._BatchNorm):
            raise ValueError(
                f'module: {where} uses {type(norm).__name__}, which '
                'normalises over the spatial extent; PatchConvMoE supports '
                'batch norm (pixel-wise in eval) or no norm')
    rows, cols = _conv_axes(module.conv, where)
    return Stage(module, rows, cols)


def is_conv_module(module: nn.Module) -> bool:
    """Duck-typed mmcv ConvModule: a ``conv`` plus its ``order`` of
    conv/norm/act (so any module that merely owns a ``conv`` is not one)."""
    return (isinstance(getattr(module, 'conv', None), nn.Conv2d)
            and hasattr(module, 'order') and hasattr(module, 'with_norm'))


def conv_stages(module: nn.Module, where: str = 'module') -> List[Stage]:
    """Read ``module`` as a chain of stages.

    Args:
        module (nn.Module): ``nn.Conv2d``, an mmcv ``ConvModule`` or
            ``DepthwiseSeparableConvModule``, or an ``nn.Sequential`` of
            those and pixel-wise layers.
        where (str): The module's name, for error messages.

    Returns:
        list[Stage]: The stages; calling their modules in order equals
        calling ``module``.
    """
    if isinstance(module, nn.Conv2d):
        return [Stage(module, *_conv_axes(module, where))]
    if hasattr(module, 'depthwise_conv') and hasattr(module, 'pointwise_conv'):
        return (conv_stages(module.depthwise_conv, f'{where}.depthwise_conv') +
                conv_stages(module.pointwise_conv, f'{where}.pointwise_conv'))
    if is_conv_module(module):
        return [_conv_module_stage(module, where)]
    if isinstance(module, nn.Sequential):
        stages = []
        for name, child in module.named_children():
            stages += conv_stages(child, f'{where}.{name}')
        if not stages:
            raise ValueError(f'module: {where} is an empty nn.Sequential')
        return stages
    if isinstance(module, PIXELWISE_TYPES):
        return [Stage(module, AxisGeometry(), AxisGeometry())]
    raise ValueError(
        f'module: {where} is a {type(module).__name__}, which is not '
        'conv-like; PatchConvMoE replaces nn.Conv2d, mmcv ConvModule, '
        'DepthwiseSeparableConvModule, or an nn.Sequential of those and '
        'pixel-wise layers (batch norm, activations, dropout)')


def channels(stages: Sequence[Stage]) -> Tuple[int, int]:
    """Input channels of the first and output channels of the last conv."""
    convs = [
        s.module if isinstance(s.module, nn.Conv2d) else s.module.conv
        for s in stages
        if isinstance(s.module, nn.Conv2d) or is_conv_module(s.module)
    ]
    if not convs:
        raise ValueError('module: contains no convolution; PatchConvMoE '
                         'replaces a convolution')
    return convs[0].in_channels, convs[-1].out_channels
