"""A minimal, torch-free lookup of the core's gates and balancing losses.

The core must not depend on MMEngine, so it keeps its own tables; the MMSeg
glue (``moe_seg_plugin.models``) registers the same classes into
``mmseg.registry.MODELS`` so configs can name them there too.
"""
import copy
import inspect
from typing import Any, Callable, Dict, Optional, Union

from torch import nn

ConfigLike = Union[dict, str, type, nn.Module]


class Table:
    """Named classes of one kind (gates, balancing losses).

    Args:
        kind (str): What the table holds, used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.classes: Dict[str, type] = {}
        self.fallback: Optional[Callable[[str], Optional[type]]] = None

    def register(self, cls: type) -> type:
        """Class decorator adding ``cls`` under its own name."""
        self.classes[cls.__name__] = cls
        return cls

    def lookup(self, name: str, key: str) -> type:
        """The class called ``name``; ValueError naming ``key`` if unknown."""
        cls = self.classes.get(name)
        if cls is None and self.fallback is not None:
            cls = self.fallback(name)
        if cls is None:
            raise ValueError(
                f'{key}: unknown {self.kind} type {name!r}; allowed: '
                f'{sorted(self.classes)}')
        return cls

    def build(self, cfg: ConfigLike, key: str, **defaults: Any) -> nn.Module:
        """Build a module from a config dict, a type name or a class.

        Args:
            cfg: ``dict(type=..., **kwargs)``, a type name, a class, or an
                already built module (returned as is).
            key (str): The setting's name, for error messages.
            **defaults: Arguments the owner supplies (e.g. ``in_channels``);
                the config's own values win.

        Returns:
            nn.Module: The built module.
        """
        if isinstance(cfg, nn.Module):
            return cfg
        if isinstance(cfg, (str, type)):
            cfg = dict(type=cfg)
        if not isinstance(cfg, dict) or 'type' not in cfg:
            raise ValueError(
                f'{key} must be a dict with a "type" key (one of '
                f'{sorted(self.classes)}), got {cfg!r}')
        cfg = copy.deepcopy(dict(cfg))
        kind = cfg.pop('type')
        cls = kind if isinstance(kind, type) else self.lookup(kind, key)
        accepted = inspect.signature(cls).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
        kwargs = {
            name: value
            for name, value in defaults.items()
            if takes_any or name in accepted
        }
        kwargs.update(cfg)
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ValueError(f'{key}: cannot build {cls.__name__} from '
                             f'{cfg!r}: {exc}') from exc


GATES = Table('gate')
BALANCE_LOSSES = Table('balancing loss')
