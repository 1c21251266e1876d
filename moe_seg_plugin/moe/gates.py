"""Gates: map each patch to one logit per expert.

A gate is called as ``gate(x, where)``: either with the layer's whole input
map (B, C, H, W) and ``where`` a callable giving each patch's mean over the
input pixels it owns, (B * gh * gw, C) (the layer passes its layout's
``cell_means``), or with the stacked patch windows (T, C, Lh, Lw) and
``where`` a mask (T, 1, Lh, Lw) that is 1 on the pixels each patch owns.
Either way global average pooling covers the patch's own real pixels only,
never the halo or the padding. A 1x1 convolution before the pooling is
applied after it instead (a linear map commutes with the mean), so its cost
does not grow with the number of experts.
"""
from typing import Callable, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import GATES

Where = Union[Tensor, Callable[[Tensor], Tensor]]


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Average of ``x`` (T, C, h, w) over the pixels where ``mask`` is 1.

    Returns:
        Tensor: Shape (T, C).
    """
    total = (x * mask).sum(dim=(2, 3))
    count = mask.sum(dim=(2, 3)).clamp_min(1.0)
    return total / count


def patch_means(x: Tensor, where: Where) -> Tensor:
    """Each patch's mean of ``x`` over its own pixels, (T, C).

    Args:
        x (Tensor): The input map or the stacked windows.
        where (Tensor | callable): A window mask, or the pooling of a map.
    """
    if isinstance(where, Tensor):
        return masked_mean(x, where)
    return where(x)


def is_pointwise(conv: nn.Conv2d) -> bool:
    """Whether ``conv`` is a plain 1x1 convolution (a per-pixel linear
    map)."""
    return (conv.kernel_size == (1, 1) and conv.stride == (1, 1)
            and conv.padding == (0, 0) and conv.groups == 1
            and conv.padding_mode == 'zeros')


def apply_conv(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``conv(x)``; a 1x1 conv as one matrix product over all pixels (few
    output channels send torch's conv to a slow kernel, worst in backward).
    """
    if not is_pointwise(conv):
        return conv(x)
    weight = conv.weight.flatten(1)
    # One 2-D product per image: a broadcast batched product is far slower.
    out = torch.stack([weight @ image for image in x.flatten(2).unbind(0)])
    if conv.bias is not None:
        out = out + conv.bias[:, None]
    return out.view(x.shape[0], -1, *x.shape[2:])


def conv_then_pool(conv: nn.Conv2d, x: Tensor, where: Where) -> Tensor:
    """``patch_means(conv(x), where)``; a 1x1 conv runs after the pooling.

    Returns:
        Tensor: (T, conv.out_channels).
    """
    if is_pointwise(conv):
        return F.linear(
            patch_means(x, where), conv.weight.flatten(1), conv.bias)
    return patch_means(conv(x), where)


@GATES.register
class GAPLinearGate(nn.Module):
    """Global average pool, then a linear layer.

    Args:
        in_channels (int): Channels of the patch.
        num_experts (int): Number of logits.
    """

    def __init__(self, in_channels: int, num_experts: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, num_experts)

    def forward(self, x: Tensor, where: Where) -> Tensor:
        return self.fc(patch_means(x, where))


@GATES.register
class ConvGAPGate(nn.Module):
    """A convolution to one channel per expert, then global average pool.

    Args:
        in_channels (int): Channels of the patch.
        num_experts (int): Number of logits.
        kernel_size (int): Kernel of the convolution (odd). Default: 1.
    """

    def __init__(self,
                 in_channels: int,
                 num_experts: int,
                 kernel_size: int = 1) -> None:
        super().__init__()
        _check_kernel(kernel_size)
        self.conv = nn.Conv2d(
            in_channels, num_experts, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor, where: Where) -> Tensor:
        return conv_then_pool(self.conv, x, where)


@GATES.register
class DoubleConvGAPGate(nn.Module):
    """"2Conv-GAP": Conv(C, m) -> BN -> Conv(m, N) -> global average pool.

    Args:
        in_channels (int): Channels of the patch.
        num_experts (int): Number of logits.
        hidden_channels (int): Width m of the first convolution. Default: 8.
        kernel_size (int): Kernel of both convolutions (odd). Default: 1.
        with_act (bool): Put a ReLU after the BN. Default: False.
    """

    def __init__(self,
                 in_channels: int,
                 num_experts: int,
                 hidden_channels: int = 8,
                 kernel_size: int = 1,
                 with_act: bool = False) -> None:
        super().__init__()
        _check_kernel(kernel_size)
        if hidden_channels < 1:
            raise ValueError(f'gate.hidden_channels must be >= 1, got '
                             f'{hidden_channels}')
        pad = kernel_size // 2
        layers = [
            nn.Conv2d(in_channels, hidden_channels, kernel_size, padding=pad,
                      bias=False),
            nn.BatchNorm2d(hidden_channels),
        ]
        if with_act:
            layers.append(nn.ReLU(inplace=True))
        layers.append(
            nn.Conv2d(hidden_channels, num_experts, kernel_size, padding=pad))
        self.convs = nn.Sequential(*layers)

    def forward(self, x: Tensor, where: Where) -> Tensor:
        if not self.training and self.affine_in_eval():
            return self._pool_first(x, where)
        hidden = apply_conv(self.convs[0], x)
        for layer in self.convs[1:-1]:
            hidden = layer(hidden)
        return conv_then_pool(self.convs[-1], hidden, where)

    def affine_in_eval(self) -> bool:
        """Whether the gate is an affine map of each pixel in eval mode:
        1x1 convolutions and a batch norm with running statistics, no
        activation. Pooling then commutes with the whole gate."""
        first, norm, last = (self.convs[0], self.convs[1], self.convs[-1])
        return (len(self.convs) == 3 and is_pointwise(first)
                and is_pointwise(last)
                and isinstance(norm, nn.modules.batchnorm._BatchNorm)
                and norm.track_running_stats
                and norm.running_mean is not None)

    def _pool_first(self, x: Tensor, where: Where) -> Tensor:
        """The eval-mode gate on the patch means (T, C): the same logits as
        the per-pixel path, at a cost that does not depend on the map."""
        first, norm, last = self.convs
        hidden = F.linear(patch_means(x, where), first.weight.flatten(1),
                          first.bias)
        hidden = norm(hidden[:, :, None, None]).flatten(1)
        return F.linear(hidden, last.weight.flatten(1), last.bias)


def _check_kernel(kernel_size: int) -> None:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f'gate.kernel_size must be a positive odd number '
                         f'(1 or 3), got {kernel_size}')
