"""Evaluation helpers beyond MMSeg's metrics."""
from .flops import (MoELayerFlops, ModelComplexity, analyze_model,
                    analyze_moe_layer, compare_complexity, count_flops,
                    inference_model)
from .latency import (compare_latency, latency_ratio, latency_stats,
                      measure_latency)

__all__ = [
    'measure_latency', 'compare_latency', 'latency_ratio', 'latency_stats',
    'MoELayerFlops', 'ModelComplexity', 'analyze_model', 'analyze_moe_layer',
    'compare_complexity', 'count_flops', 'inference_model'
]
