"""Evaluation helpers beyond MMSeg's metrics."""
from .latency import measure_latency

__all__ = ['measure_latency']
