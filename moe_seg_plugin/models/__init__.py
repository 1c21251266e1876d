"""MMSeg glue: registrations, heads and injection of PatchConvMoE."""
from .registration import register_core

register_core()

__all__ = ['register_core']
