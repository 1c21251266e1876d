"""Synthetic street scenes labelled with the 19 Cityscapes train ids.

Kept so that existing imports keep working; the generator lives in the
:mod:`.street` subpackage, split into modules by job.
"""
from .street import (BICYCLE, BUILDING, BUS, CAR, CLASSES, FENCE,
                     IGNORE_INDEX, MOTORCYCLE, PERSON, POLE, RIDER, ROAD,
                     SIDEWALK, SKY, TERRAIN, TRAFFIC_LIGHT, TRAFFIC_SIGN,
                     TRAIN, TRUCK, VEGETATION, WALL, generate_scene)

__all__ = ['generate_scene', 'CLASSES', 'IGNORE_INDEX', 'ROAD', 'SIDEWALK',
           'BUILDING', 'WALL', 'FENCE', 'POLE', 'TRAFFIC_LIGHT',
           'TRAFFIC_SIGN', 'VEGETATION', 'TERRAIN', 'SKY', 'PERSON', 'RIDER',
           'CAR', 'TRUCK', 'BUS', 'TRAIN', 'MOTORCYCLE', 'BICYCLE']
