"""ENet encoder and decoder up to its last bottleneck, as an MMSeg backbone.

The decoder's last regular bottleneck and the final transposed convolution
live in :class:`ENetHead`, so that a PatchConvMoE layer can replace the
decoder's last convolution with the decode-head wrapper.
"""
from typing import List, Sequence

from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor, nn

from .enet_blocks import (DownsamplingBottleneck, InitialBlock,
                          RegularBottleneck, UpsamplingBottleneck)

#: Bottlenecks 2.1-2.8 (and 3.1-3.8): (kind, dilation).
STAGE_2_3 = (('regular', 1), ('dilated', 2), ('asymmetric', 1),
             ('dilated', 4), ('regular', 1), ('dilated', 8),
             ('asymmetric', 1), ('dilated', 16))


@MODELS.register_module()
class ENet(BaseModule):
    """ENet (Paszke et al. 2016) from the initial block to bottleneck 5.0.

    Args:
        in_channels (int): Image channels. Default: 3.
        channels (Sequence[int]): Widths of the initial block, stage 1 and
            stages 2-3. Default: (16, 64, 128).
        dropouts (Sequence[float]): Spatial dropout of stage 1 and of the
            later stages. Default: (0.01, 0.1).
        init_cfg (dict, optional): Initialisation config.

    Returns (forward):
        list[Tensor]: One map: the output of bottleneck 5.0 (16 channels at
        1/2 of the input resolution).
    """

    def __init__(self, in_channels: int = 3,
                 channels: Sequence[int] = (16, 64, 128),
                 dropouts: Sequence[float] = (0.01, 0.1),
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        c0, c1, c2 = channels
        p1, p2 = dropouts
        self.initial = InitialBlock(in_channels, c0)
        self.down1 = DownsamplingBottleneck(c0, c1, p1)
        self.stage1 = nn.Sequential(
            *[RegularBottleneck(c1, dropout=p1) for _ in range(4)])
        self.down2 = DownsamplingBottleneck(c1, c2, p2)
        self.stage2 = self._middle_stage(c2, p2)
        self.stage3 = self._middle_stage(c2, p2)
        self.up4 = UpsamplingBottleneck(c2, c1, p2)
        self.stage4 = nn.Sequential(
            *[RegularBottleneck(c1, dropout=p2) for _ in range(2)])
        self.up5 = UpsamplingBottleneck(c1, c0, p2)

    @staticmethod
    def _middle_stage(channels: int, dropout: float) -> nn.Sequential:
        return nn.Sequential(*[
            RegularBottleneck(channels, kind, dilation, dropout)
            for kind, dilation in STAGE_2_3
        ])

    def forward(self, x: Tensor) -> List[Tensor]:
        x = self.initial(x)
        x, indices1, size1 = self.down1(x)
        x = self.stage1(x)
        x, indices2, size2 = self.down2(x)
        x = self.stage3(self.stage2(x))
        x = self.stage4(self.up4(x, indices2, size2))
        return [self.up5(x, indices1, size1)]
