"""The PatchConvMoE core: torch only, no OpenMMLab imports."""
from .gates import ConvGAPGate, DoubleConvGAPGate, GAPLinearGate
from .layer import PatchConvMoE
from .losses import (MoEEntropyLoss, MoEImportanceLoss, MoELoadLoss,
                     MoESwitchLoss, MoEZLoss)
from .registry import BALANCE_LOSSES, GATES, UnknownKeyError
from .routing import RoutingRecord, TopK, choose_top_k, top_k_route
from .statistics import expert_usage, normalised_entropy, routing_health

__all__ = [
    'PatchConvMoE', 'GAPLinearGate', 'ConvGAPGate', 'DoubleConvGAPGate',
    'MoEImportanceLoss', 'MoELoadLoss', 'MoESwitchLoss', 'MoEEntropyLoss',
    'MoEZLoss', 'RoutingRecord', 'TopK', 'choose_top_k', 'top_k_route',
    'GATES', 'BALANCE_LOSSES', 'UnknownKeyError', 'expert_usage',
    'normalised_entropy', 'routing_health'
]
