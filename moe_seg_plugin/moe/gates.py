"""Gates: map each patch to one logit per expert.

A gate is called as ``gate(x, pool)`` with the layer's whole input map
(B, C, H, W) and ``pool`` a callable giving each patch's mean of a map over
the input pixels it owns, (B * gh * gw, C) (the layer passes its layout's
``cell_means``): global average pooling covers the patch's own real pixels
only, never the halo or the padding. A 1x1 convolution before the pooling is
applied after it instead (a linear map commutes with the mean), so its cost
does not grow with the number of experts.
"""
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import GATES

Pool = Callable[[Tensor], Tensor]


def is_pointwise(conv: nn.Conv2d) -> bool:
    """Whether ``conv`` is a plain 1x1 convolution (a per-pixel linear
    map)."""
    return (conv.kernel_size == (1, 1) and conv.stride == (1, 1)
            and conv.padding == (0, 0) and conv.groups == 1
            and conv.padding_mode == 'zeros')


def apply_conv(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``conv(x)``; a 1x1 conv as one batched matrix product over all
    pixels (few output channels send torch's conv to a slow kernel, worst
    in backward; a broadcast ``matmul`` is slower still on the CPU).
    """
    if not is_pointwise(conv):
        return conv(x)
    weight = conv.weight.flatten(1)
    out = torch.bmm(weight.expand(x.shape[0], -1, -1), x.flatten(2))
    if conv.bias is not None:
        out = out + conv.bias[:, None]
    return out.view(x.shape[0], -1, *x.shape[2:])


def conv_then_pool(conv: nn.Conv2d, x: Tensor, pool: Pool) -> Tensor:
    """``pool(conv(x))``; a 1x1 conv runs after the pooling.

    Returns:
        Tensor: (T, conv.out_channels).
    """
    if is_pointwise(conv):
        return F.linear(
            pool(x), conv.weight.flatten(1), conv.bias)
    return pool(conv(x))


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

    def forward(self, x: Tensor, pool: Pool) -> Tensor:
        return self.fc(pool(x))


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

    def forward(self, x: Tensor, pool: Pool) -> Tensor:
        return conv_then_pool(self.conv, x, pool)


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

    def forward(self, x: Tensor, pool: Pool) -> Tensor:
        if not self.training and self.affine_in_eval():
            return self._pool_first(x, pool)
        hidden = apply_conv(self.convs[0], x)
        for layer in self.convs[1:-1]:
            hidden = layer(hidden)
        return conv_then_pool(self.convs[-1], hidden, pool)

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

    def _pool_first(self, x: Tensor, pool: Pool) -> Tensor:
        """The eval-mode gate on the patch means (T, C): the same logits as
        the per-pixel path, at a cost that does not depend on the map."""
        first, norm, last = self.convs
        hidden = F.linear(pool(x), first.weight.flatten(1),
                          first.bias)
        hidden = norm(hidden[:, :, None, None]).flatten(1)
        return F.linear(hidden, last.weight.flatten(1), last.bias)


def _check_kernel(kernel_size: int) -> None:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f'gate.kernel_size must be a positive odd number '
                         f'(1 or 3), got {kernel_size}')
