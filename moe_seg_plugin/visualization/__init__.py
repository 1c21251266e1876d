"""Pictures of routing decisions and routing statistics."""
from .routing_charts import class_heat_map, save_png, usage_chart
from .routing_map import draw_routing_map, routing_cells

__all__ = [
    'draw_routing_map', 'routing_cells', 'usage_chart', 'class_heat_map',
    'save_png'
]
