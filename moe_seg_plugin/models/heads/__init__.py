"""Decode-head wrappers."""
from .enet_head import ENetHead
from .patch_moe_head import DEFAULT_TARGETS, PatchMoEHead

__all__ = ['PatchMoEHead', 'DEFAULT_TARGETS', 'ENetHead']
