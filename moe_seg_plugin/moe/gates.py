"""Gates: map each patch window to one logit per expert.

Every gate is called with the stacked patch windows (T, C, Lh, Lw) and a mask
(T, 1, Lh, Lw) that is 1 on the real pixels the patch owns; global average
pooling covers those pixels only, never the halo or the padding.
"""
from torch import Tensor, nn

from .registry import GATES


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Average of ``x`` (T, C, h, w) over the pixels where ``mask`` is 1.

    Returns:
        Tensor: Shape (T, C).
    """
    total = (x * mask).sum(dim=(2, 3))
    count = mask.sum(dim=(2, 3)).clamp_min(1.0)
    return total / count


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

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.fc(masked_mean(x, mask))


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

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return masked_mean(self.conv(x), mask)


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

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return masked_mean(self.convs(x), mask)


def _check_kernel(kernel_size: int) -> None:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f'gate.kernel_size must be a positive odd number '
                         f'(1 or 3), got {kernel_size}')
