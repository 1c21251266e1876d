"""Pictures of routing decisions and routing statistics, and the
visualizer the plugin's configs use."""
from .routing_charts import class_heat_map, save_png, usage_chart
from .routing_map import draw_routing_map, routing_cells
from .seg_visualizer import ContiguousSegLocalVisualizer

__all__ = [
    'draw_routing_map', 'routing_cells', 'usage_chart', 'class_heat_map',
    'save_png', 'ContiguousSegLocalVisualizer'
]
