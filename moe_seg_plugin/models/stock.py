"""The stock model behind a MoE model config.

A MoE config names its wrappers (``PatchMoEHead``, ``PatchMoESegmentor``)
and the stock class each wraps; removing the wrappers gives the config of the
stock model: every module as in the MoE model, with the dense convs in place
of the PatchConvMoE layers. The analysis tools compare the two
(tools/analysis_tools/get_flops.py, tools/analysis_tools/benchmark.py).
"""
import copy
from typing import Any, Tuple

from mmengine.config import Config

DEFAULT_SEGMENTOR = 'EncoderDecoder'


def _type_name(value: Any) -> str:
    """The class name a config ``type`` refers to ('mmseg.X' -> 'X')."""
    if isinstance(value, type):
        return value.__name__
    return str(value).rpartition('.')[2]


def _unwrap(node: Any) -> Tuple[Any, int]:
    """``node`` with every MoE wrapper replaced by what it wraps.

    Returns:
        tuple: The new node and the number of wrappers removed.
    """
    if isinstance(node, (list, tuple)):
        items = [_unwrap(item) for item in node]
        return type(node)(item for item, _ in items), sum(
            count for _, count in items)
    if not isinstance(node, dict):
        return node, 0
    node = copy.copy(node)
    removed = 0
    kind = _type_name(node.get('type', ''))
    if kind == 'PatchMoEHead':
        if not node.get('head_type'):
            raise ValueError('PatchMoEHead config without head_type: cannot '
                             'tell which stock head it wraps')
        node['type'] = node.pop('head_type')
        node.pop('moe', None)
        removed += 1
    elif kind == 'PatchMoESegmentor':
        node['type'] = node.pop('segmentor_type', DEFAULT_SEGMENTOR)
        node.pop('moe_layers', None)
        removed += 1
    for key, value in list(node.items()):
        node[key], count = _unwrap(value)
        removed += count
    return node, removed


def stock_model_config(model_cfg: dict) -> dict:
    """The stock model config behind ``model_cfg`` (a copy).

    ``PatchMoEHead`` becomes its ``head_type`` without ``moe``;
    ``PatchMoESegmentor`` becomes its ``segmentor_type`` (default
    'EncoderDecoder') without ``moe_layers``; wrappers nested anywhere
    (decode and auxiliary heads, lists of heads, a MoE segmentor holding a
    MoE head) are all removed. A config without MoE is returned unchanged.

    Args:
        model_cfg (dict): A model config (``cfg.model``).

    Returns:
        dict: The same type of dict, holding the stock model's config.
    """
    stock, _ = _unwrap(model_cfg)
    return stock


def count_moe_wrappers(model_cfg: dict) -> int:
    """How many MoE wrappers (heads and segmentors) ``model_cfg`` holds."""
    _, removed = _unwrap(model_cfg)
    return removed


def stock_config(cfg: Config) -> Config:
    """A copy of the whole config with ``model`` replaced by the stock
    model's (data, schedules and the rest unchanged)."""
    stock = copy.deepcopy(cfg)
    stock.model = stock_model_config(stock.model)
    return stock
