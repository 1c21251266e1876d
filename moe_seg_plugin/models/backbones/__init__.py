"""Backbones MMSeg does not ship."""
from .enet import ENet

__all__ = ['ENet']
