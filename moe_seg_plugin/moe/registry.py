"""A minimal, torch-free lookup of the core's gates and balancing losses.

The core must not depend on MMEngine, so it keeps its own tables; the MMSeg
glue (``moe_seg_plugin.models``) registers the same classes into
``mmseg.registry.MODELS`` so configs can name them there too.
"""
import copy
import difflib
import inspect
from typing import (Any, Callable, Collection, Dict, Iterable, List,
                    Optional, Sequence, Union)

from torch import nn

ConfigLike = Union[dict, str, type, nn.Module]


class UnknownKeyError(TypeError, ValueError):
    """A keyword a class does not take, named with the ones it does.

    A TypeError, as Python's own for an unexpected keyword, and a
    ValueError, as the core's other bad settings (so callers that name the
    config section, e.g. ``inject_moe``, catch it too).
    """


def keywords_of(func: Callable) -> Optional[List[str]]:
    """The keyword arguments ``func`` (a function or class) takes.

    Args:
        func: A callable.

    Returns:
        list[str] | None: Their names in order, None if it takes
        ``**kwargs`` (any keyword) or has no signature.
    """
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_keywords(given: Iterable[str], accepted: Collection[str],
                   owner: str, where: str = '',
                   shown: Optional[Sequence[str]] = None) -> None:
    """Refuse keywords outside ``accepted``.

    Args:
        given: The keywords passed.
        accepted: The keywords allowed.
        owner (str): The class they are for, e.g. 'DoubleConvGAPGate'.
        where (str): The setting that holds them, e.g. 'gate' (none: the
            keywords are the owner's own).
        shown: The allowed keywords to list (default ``accepted``); those
            the builder fills in itself may be left out.

    Raises:
        UnknownKeyError: Naming the setting, the first unknown key, the
            owner, the closest allowed key if any, and the allowed keys.
    """
    unknown = [key for key in given if key not in accepted]
    if not unknown:
        return
    key = unknown[0]
    shown = sorted(accepted if shown is None else shown)
    close = difflib.get_close_matches(key, shown, n=1)
    hint = f' (did you mean {close[0]!r}?)' if close else ''
    more = f' (also unknown: {unknown[1:]})' if unknown[1:] else ''
    prefix = f'{where}: ' if where else ''
    raise UnknownKeyError(f'{prefix}unknown key {key!r} for {owner}{hint}'
                          f'{more}; allowed: {shown}')


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
        accepted = keywords_of(cls)
        kwargs = {
            name: value
            for name, value in defaults.items()
            if accepted is None or name in accepted
        }
        if accepted is not None:
            shown = [name for name in accepted if name not in defaults]
            check_keywords(cfg, accepted, cls.__name__, key, shown)
        kwargs.update(cfg)
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ValueError(f'{key}: cannot build {cls.__name__} from '
                             f'{cfg!r}: {exc}') from exc


GATES = Table('gate')
BALANCE_LOSSES = Table('balancing loss')
