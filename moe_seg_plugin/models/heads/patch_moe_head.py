"""PatchMoEHead: any MMSeg decode head with one conv replaced by PatchConvMoE.

``dict(type='PatchMoEHead', head_type='PSPHead', moe=dict(...), **head_cfg)``
builds the head named by ``head_type`` from ``head_cfg`` as usual and puts a
PatchConvMoE at ``moe['target']`` (default: the decoder's last convolution
before the classifier). The object *is* an instance of that head's class
(a subclass made on the fly, ``PatchMoE<HeadType>``), so it behaves like the
stock head towards the segmentor and every state-dict key except the
replaced layer's stays as in the stock model.
"""
from typing import Dict, List, Optional

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from torch import Tensor

from ..dynamic import WrapperFactory
from ..injection import inject_moe, moe_layers, moe_loss_terms
from .default_target import DEFAULT_TARGETS, default_target

__all__ = ['PatchMoEHead', 'DEFAULT_TARGETS', 'decode_head_types']


def decode_head_types() -> List[str]:
    """Names of the decode heads registered in MMSeg's MODELS."""
    import mmseg.models  # noqa: F401  (fills the registry)
    return sorted(
        name for name, cls in MODELS.module_dict.items()
        if isinstance(cls, type) and issubclass(cls, BaseDecodeHead)
        and not issubclass(cls, PatchMoEHead))


@MODELS.register_module()
class PatchMoEHead:
    """Wraps a registered decode head and replaces one of its convs.

    Args:
        head_type (str): The wrapped head, e.g. 'PSPHead'.
        moe (dict, optional): The arguments of
            :class:`~moe_seg_plugin.moe.PatchConvMoE` after the replaced
            module (num_experts, top_k, grid / patch_size, gate,
            noisy_gating, noise_std, weighting, balance_loss,
            num_shared_experts, expert_init, init_noise, capacity_factor,
            dispatch, expert_scope, merge_experts, expert_rank) plus
            ``target``, the
            dotted path of the conv inside the head. Default target: the
            decoder's last conv before the classifier, found by running the
            head once (:mod:`.default_target`; ``DEFAULT_TARGETS`` for the
            few heads set by hand); ``'conv_seg'`` routes the classifier
            itself.
        **kwargs: The wrapped head's own arguments, unchanged.
    """

    def __new__(cls, *args, head_type: Optional[str] = None, **kwargs):
        if cls is PatchMoEHead:
            if head_type is None:
                raise ValueError(
                    'decode_head.head_type: PatchMoEHead needs the decode '
                    f"head to wrap, e.g. head_type='PSPHead'; allowed: "
                    f'{decode_head_types()}')
            cls = moe_head_class(head_type)
        return super().__new__(cls)

    def __init__(self,
                 head_type: str,
                 moe: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.head_type = head_type
        settings = dict(moe or {})
        target = settings.pop('target', None) or default_target(
            self, 'decode_head.moe.target')
        self.moe_target = target
        inject_moe(self, target, settings, 'decode_head.moe')

    def loss(self, *args, **kwargs) -> Dict[str, Tensor]:
        """The wrapped head's losses plus balancing losses and routing
        metrics (keys without 'loss' are only logged).

        Args:
            *args, **kwargs: The wrapped head's own ``loss`` arguments:
                ``(inputs, batch_data_samples, train_cfg)``, or for cascade
                heads (OCRHead, PointHead) ``(inputs, prev_output,
                batch_data_samples, train_cfg)``.

        Returns:
            dict[str, Tensor]: The losses and metrics.
        """
        losses = super().loss(*args, **kwargs)
        losses.update(moe_loss_terms(self))
        return losses

    def init_weights(self) -> None:
        """The wrapped head's init; gates keep a gate's own init (a head's
        override for its classifier must not reach a gate placed there)."""
        super().init_weights()
        for layer in moe_layers(self).values():
            layer.init_weights()


moe_head_class = WrapperFactory(PatchMoEHead, __name__, decode_head_types,
                               'decode_head.head_type', 'decode head')
# Classes made on the fly must be importable under their names.
__getattr__ = moe_head_class.by_name
