"""Synthetic street-scene data in the Cityscapes and BDD100K file layouts.

Needs numpy, opencv and mmengine only (no torch).
"""
from .layouts import (write_bdd100k, write_cityscapes)
from .street import CLASSES, IGNORE_INDEX, generate_scene

__all__ = ['CLASSES', 'IGNORE_INDEX', 'generate_scene', 'write_cityscapes',
           'write_bdd100k']
