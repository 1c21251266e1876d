"""ENet's building blocks (Paszke et al. 2016, "ENet: A Deep Neural Network
Architecture for Real-Time Semantic Segmentation").

Every block is a residual: a main branch (identity, max-pooling or
max-unpooling) plus an extension branch ``ext`` (1x1 projection, a main
convolution, 1x1 expansion, spatial dropout), summed and passed through a
PReLU. ``ext`` is an ``nn.Sequential`` of ConvModules, so a PatchConvMoE layer
can replace it.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from torch import Tensor, nn

BN = dict(type='BN')
PRELU = dict(type='PReLU')


def _unit(in_channels: int, out_channels: int, kernel, **kwargs) -> nn.Module:
    """Conv (no bias) + BN + PReLU."""
    return ConvModule(in_channels, out_channels, kernel, bias=False,
                      norm_cfg=BN, act_cfg=PRELU, **kwargs)


def unpool_2x2(x: Tensor, indices: Tensor, size: Tuple[int, int]) -> Tensor:
    """Max-unpooling of 2x2 stride-2 windows without ``max_unpool2d``.

    torch's ``max_unpool2d`` has no deterministic kernel, so training with
    ``torch.use_deterministic_algorithms(True)`` (MMEngine's
    ``randomness.deterministic=True``) refuses it. Here every output pixel
    reads its window's value and keeps it where the window's index points
    at it: a gather, deterministic forward and backward, with the same
    result as ``F.max_unpool2d(x, indices, 2, 2, output_size=size)`` for
    indices of a 2x2 stride-2 max pool.

    Args:
        x (Tensor): Pooled values, (B, C, h, w).
        indices (Tensor): The pool's flat indices into (H, W), same shape.
        size (tuple[int, int]): (H, W) of the map before pooling;
            ``2h <= H <= 2h + 1`` (and the same for the width).
    """
    height, width = size
    batch, channels, rows, cols = x.shape
    if not (2 * rows <= height <= 2 * rows + 1
            and 2 * cols <= width <= 2 * cols + 1):
        raise ValueError(f'unpool_2x2: output size {size} does not match '
                         f'a 2x2 stride-2 pool of {tuple(x.shape[-2:])}')

    def spread(t: Tensor, fill) -> Tensor:
        """Each window's entry on its 2x2 pixels, padded to (H, W)."""
        t = t[:, :, :, None, :, None].expand(batch, channels, rows, 2, cols,
                                             2)
        t = t.reshape(batch, channels, 2 * rows, 2 * cols)
        return F.pad(t, (0, width - 2 * cols, 0, height - 2 * rows),
                     value=fill)

    position = torch.arange(height * width, device=x.device)
    chosen = spread(indices, -1) == position.view(height, width)
    return torch.where(chosen, spread(x, 0.0), x.new_zeros(()))


class InitialBlock(nn.Module):
    """3x3 stride-2 conv (out - in channels) beside a 2x2 max pool of the
    input (ceil mode, so odd sizes agree with the conv), concatenated, then
    BN + PReLU.

    Args:
        in_channels (int): Image channels.
        out_channels (int): Output channels (16 in ENet).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3,
                              stride=2, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.PReLU(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)))


class RegularBottleneck(nn.Module):
    """Regular, dilated or asymmetric bottleneck with an identity shortcut.

    Args:
        channels (int): Input and output channels.
        kind (str): 'regular' (3x3), 'dilated' or 'asymmetric' (5x1, 1x5).
        dilation (int): Dilation of a 'dilated' bottleneck.
        dropout (float): Spatial dropout probability.
        ratio (int): Channel reduction inside the bottleneck.
    """

    def __init__(self, channels: int, kind: str = 'regular',
                 dilation: int = 1, dropout: float = 0.1,
                 ratio: int = 4) -> None:
        super().__init__()
        inner = channels // ratio
        if kind == 'asymmetric':
            main = nn.Sequential(
                ConvModule(inner, inner, (5, 1), padding=(2, 0), bias=False,
                           norm_cfg=None, act_cfg=None),
                _unit(inner, inner, (1, 5), padding=(0, 2)))
        elif kind in ('regular', 'dilated'):
            main = _unit(inner, inner, 3, padding=dilation,
                         dilation=dilation)
        else:
            raise ValueError(f"kind must be 'regular', 'dilated' or "
                             f"'asymmetric', got {kind!r}")
        self.ext = nn.Sequential(
            _unit(channels, inner, 1), main,
            ConvModule(inner, channels, 1, bias=False, norm_cfg=BN,
                       act_cfg=None),
            nn.Dropout2d(dropout))
        self.act = nn.PReLU(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.ext(x))


class DownsamplingBottleneck(nn.Module):
    """Halves the resolution: 2x2 max pool (indices kept) and zero-padded
    channels on the main branch, a 2x2 stride-2 projection on ``ext``.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        dropout (float): Spatial dropout probability.
        ratio (int): Channel reduction inside the bottleneck.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 dropout: float = 0.1, ratio: int = 4) -> None:
        super().__init__()
        inner = in_channels // ratio
        self.pool = nn.MaxPool2d(2, stride=2, return_indices=True)
        self.ext = nn.Sequential(
            _unit(in_channels, inner, 2, stride=2),
            _unit(inner, inner, 3, padding=1),
            ConvModule(inner, out_channels, 1, bias=False, norm_cfg=BN,
                       act_cfg=None),
            nn.Dropout2d(dropout))
        self.pad = out_channels - in_channels
        self.act = nn.PReLU(out_channels)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, torch.Size]:
        """Returns the output, the pooling indices and the input size."""
        main, indices = self.pool(x)
        main = F.pad(main, (0, 0, 0, 0, 0, self.pad))
        return self.act(main + self.ext(x)), indices, x.shape


class UpsamplingBottleneck(nn.Module):
    """Doubles the resolution: 1x1 conv + BN and max-unpooling with the
    indices of the matching downsampling on the main branch, a stride-2
    transposed conv on ``ext``. With deterministic algorithms on
    (``randomness.deterministic=True``) the unpooling is
    :func:`unpool_2x2`, which gives the same result.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        dropout (float): Spatial dropout probability.
        ratio (int): Channel reduction inside the bottleneck.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 dropout: float = 0.1, ratio: int = 4) -> None:
        super().__init__()
        inner = in_channels // ratio
        self.main_conv = ConvModule(in_channels, out_channels, 1, bias=False,
                                    norm_cfg=BN, act_cfg=None)
        self.unpool = nn.MaxUnpool2d(2, stride=2)
        self.reduce = _unit(in_channels, inner, 1)
        self.up = nn.ConvTranspose2d(inner, inner, 3, stride=2, padding=1,
                                     bias=False)
        self.up_bn = nn.BatchNorm2d(inner)
        self.up_act = nn.PReLU(inner)
        self.expand = ConvModule(inner, out_channels, 1, bias=False,
                                 norm_cfg=BN, act_cfg=None)
        self.dropout = nn.Dropout2d(dropout)
        self.act = nn.PReLU(out_channels)

    def forward(self, x: Tensor, indices: Tensor,
                size: Optional[torch.Size]) -> Tensor:
        main = self.main_conv(x)
        if torch.are_deterministic_algorithms_enabled():
            main = unpool_2x2(main, indices, tuple(size[-2:]))
        else:
            main = self.unpool(main, indices, output_size=size[-2:])
        ext = self.reduce(x)
        # A stride-2 transposed conv gives at most twice the input; an odd
        # pre-pooling size gets one zero row/column at the end.
        height, width = size[-2:]
        reachable = (min(height, 2 * x.shape[-2]), min(width, 2 * x.shape[-1]))
        ext = self.up(ext, output_size=reachable)
        ext = F.pad(ext, (0, width - reachable[1], 0, height - reachable[0]))
        ext = self.dropout(self.expand(self.up_act(self.up_bn(ext))))
        return self.act(main + ext)
