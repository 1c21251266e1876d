"""ENet's decoder end: bottleneck 5.1 and the full-resolution classifier."""
from mmseg.registry import MODELS
from torch import Tensor, nn

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from ..backbones.enet_blocks import RegularBottleneck


@MODELS.register_module()
class ENetHead(BaseDecodeHead):
    """Bottleneck 5.1 (regular, ``channels`` wide) and ENet's final 3x3
    stride-2 transposed convolution as the classifier ``conv_seg``.

    The bottleneck's extension branch (``bottleneck.ext``: 1x1, 3x3, 1x1
    convolutions) is the decoder's last convolution block, the default
    PatchConvMoE target of this head.

    Args:
        dropout (float): Spatial dropout inside the bottleneck.
        **kwargs: BaseDecodeHead arguments (``in_channels`` must equal
            ``channels``, 16 in ENet).
    """

    def __init__(self, dropout: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        if self.in_channels != self.channels:
            raise ValueError(
                f'ENetHead: in_channels ({self.in_channels}) must equal '
                f'channels ({self.channels})')
        self.bottleneck = RegularBottleneck(self.channels, dropout=dropout)
        self.conv_seg = nn.ConvTranspose2d(
            self.channels, self.out_channels, 3, stride=2, padding=1,
            output_padding=1)

    def forward(self, inputs) -> Tensor:
        x = self._transform_inputs(inputs)
        return self.cls_seg(self.bottleneck(x))
