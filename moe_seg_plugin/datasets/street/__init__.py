"""Synthetic street scenes labelled with the 19 Cityscapes train ids.

A scene is a straight street seen from a car: a pinhole camera at height
``cam_h`` looks along the street towards a vanishing point on the horizon.
Every surface is a plane of the world (the ground, facades along the street,
faces across it) or a flat shape on such a plane (persons, signs, bicycles),
projected exactly and painted far to near, so nearer things occlude farther
ones and sizes follow the perspective. Textures are computed from each
pixel's coordinates on its plane (tiles, window grids and lattices keep their
perspective, and fade to their mean colour when finer than a pixel) and from
noise fields shared by the image. Colours, sizes, counts and lighting vary
per image and per object.

World axes: X to the right, Y up (the ground is Y = 0), Z forward; metres.
The entry point is :func:`generate_scene` (module ``scene``). The other
modules, by job:

- basics: ``classes`` (label ids), ``camera`` (projection), ``shapes``
  (outlines), ``canvas`` (image, label, regions), ``noise``, ``coverage``
  (anti-aliased stripes), ``colours``;
- the plan: ``street_layout`` (lanes, kerbs), ``segments`` (street sides);
- surfaces: ``sky``, ``ground``, ``buildings``, ``barriers`` (walls,
  fences), ``vegetation``, ``far_end``, ``street_sides``;
- objects: ``uprights``, ``lights_and_signs``, ``poles``, ``shadows``,
  ``vehicle_body``, ``vehicles``, ``vehicle_plan``, ``people``,
  ``two_wheelers``, ``people_plan``;
- finishing: ``camera_effects`` (bonnet, lighting, blur, noise).

Needs numpy and opencv only.
"""
from .classes import (BICYCLE, BUILDING, BUS, CAR, CLASSES, FENCE,
                      IGNORE_INDEX, MOTORCYCLE, PERSON, POLE, RIDER, ROAD,
                      SIDEWALK, SKY, TERRAIN, TRAFFIC_LIGHT, TRAFFIC_SIGN,
                      TRAIN, TRUCK, VEGETATION, WALL)
from .scene import generate_scene

__all__ = ['generate_scene', 'CLASSES', 'IGNORE_INDEX', 'ROAD', 'SIDEWALK',
           'BUILDING', 'WALL', 'FENCE', 'POLE', 'TRAFFIC_LIGHT',
           'TRAFFIC_SIGN', 'VEGETATION', 'TERRAIN', 'SKY', 'PERSON', 'RIDER',
           'CAR', 'TRUCK', 'BUS', 'TRAIN', 'MOTORCYCLE', 'BICYCLE']
