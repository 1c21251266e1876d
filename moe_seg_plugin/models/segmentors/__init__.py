"""Segmentor wrappers."""
from .patch_moe_segmentor import PatchMoESegmentor

__all__ = ['PatchMoESegmentor']
