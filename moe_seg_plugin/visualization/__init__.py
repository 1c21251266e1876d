"""Pictures of routing decisions."""
from .routing_map import draw_routing_map, routing_cells

__all__ = ['draw_routing_map', 'routing_cells']
