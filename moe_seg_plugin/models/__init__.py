"""MMSeg glue: registrations, heads and injection of PatchConvMoE."""
from .backbones import ENet
from .heads import DEFAULT_TARGETS, ENetHead, PatchMoEHead
from .injection import inject_moe, moe_layers, moe_loss_terms
from .registration import register_core
from .segmentors import PatchMoESegmentor

register_core()

__all__ = [
    'register_core', 'ENet', 'ENetHead', 'PatchMoEHead', 'PatchMoESegmentor',
    'DEFAULT_TARGETS', 'inject_moe', 'moe_layers', 'moe_loss_terms'
]
