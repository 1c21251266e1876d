"""PatchMoESegmentor: PatchConvMoE layers anywhere in a segmentor.

``dict(type='PatchMoESegmentor', segmentor_type='EncoderDecoder',
moe_layers=[dict(target='backbone.layer4.1.conv2', ...), ...], **model)``
builds the segmentor as usual, then replaces each target (a dotted path in
the segmentor) through the same :func:`inject_moe` the decode-head wrapper
uses. Keys of untouched modules stay the stock keys.
"""
from typing import Dict, List, Optional, Sequence

from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS
from torch import Tensor

from ..dynamic import WrapperFactory
from ..heads.patch_moe_head import PatchMoEHead
from ..injection import inject_moe, moe_layers, moe_loss_terms


def segmentor_types() -> List[str]:
    """Names of the segmentors registered in MMSeg's MODELS."""
    import mmseg.models  # noqa: F401  (fills the registry)
    return sorted(
        name for name, cls in MODELS.module_dict.items()
        if isinstance(cls, type) and issubclass(cls, BaseSegmentor)
        and not issubclass(cls, PatchMoESegmentor))


@MODELS.register_module()
class PatchMoESegmentor:
    """Wraps a registered segmentor and replaces convs at dotted paths.

    Args:
        segmentor_type (str): The wrapped segmentor. Default:
            'EncoderDecoder'.
        moe_layers (list[dict]): One dict per MoE layer: ``target`` (dotted
            path, e.g. 'backbone.layer4.1.conv2' or 'decode_head.conv_seg')
            plus PatchConvMoE settings.
        **kwargs: The wrapped segmentor's own arguments, unchanged.

    Each layer's balancing loss and routing metrics join the loss dict with
    the layer's path in the key (``loss_moe_switch.backbone.layer4.1.conv2``,
    ``moe_usage_entropy.backbone.layer4.1.conv2``); layers inside a
    PatchMoEHead are reported by that head (``decode.``).
    """

    def __new__(cls, *args, segmentor_type: str = 'EncoderDecoder',
                **kwargs):
        if cls is PatchMoESegmentor:
            cls = moe_segmentor_class(segmentor_type)
        return super().__new__(cls)

    def __init__(self,
                 segmentor_type: str = 'EncoderDecoder',
                 moe_layers: Optional[Sequence[dict]] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.segmentor_type = segmentor_type
        if not moe_layers:
            raise ValueError(
                'model.moe_layers: give at least one dict(target=<dotted '
                "path>, ...), e.g. dict(target='decode_head.conv_seg')")
        self.moe_targets = []
        for index, layer in enumerate(moe_layers):
            where = f'model.moe_layers[{index}]'
            settings = dict(layer)
            target = settings.pop('target', None)
            if not target:
                raise ValueError(f'{where}.target: missing; give the dotted '
                                 'path of a conv inside the segmentor')
            inject_moe(self, target, settings, where)
            self.moe_targets.append(target)

    def init_weights(self) -> None:
        """The segmentor's init; then every gate gets its own init again.

        MMEngine calls ``init_weights`` only on the direct children of
        OpenMMLab modules, so a layer inside a plain ``nn.Sequential`` would
        keep what an enclosing ``init_cfg`` (a head's classifier override,
        a backbone's Kaiming or Constant init) did to its gate.
        """
        super().init_weights()
        for layer in moe_layers(self).values():
            layer.init_weights()

    def loss(self, inputs: Tensor, data_samples) -> Dict[str, Tensor]:
        """The segmentor's losses plus each MoE layer's terms."""
        losses = super().loss(inputs, data_samples)
        owned = tuple(
            f'{name}.' for name, module in self.named_modules()
            if isinstance(module, PatchMoEHead))
        losses.update(
            moe_loss_terms(self, owned_elsewhere=owned, name_layers=True))
        return losses


moe_segmentor_class = WrapperFactory(PatchMoESegmentor, __name__,
                                     segmentor_types, 'model.segmentor_type',
                                     'segmentor')
__getattr__ = moe_segmentor_class.by_name
