"""Set-up errors the tools print as one line instead of a traceback.

:class:`SetupError` is the project's own error for a user's mistake (a bad
config key, a missing or empty data folder, an unreadable checkpoint).
:func:`as_setup_error` turns the few errors MMEngine, MMSeg and torch raise
deep inside for such mistakes into one: an unknown keyword in a config
section (TypeError), an unknown ``type`` (KeyError from the registry), a
checkpoint torch cannot read or refuses to load safely, a data file that
does not decode (:mod:`.data_errors`), an mmpretrain backbone without the
plugin's mmpretrain extra.
"""
import os
import pickle
import re
from difflib import get_close_matches
from inspect import Parameter, signature
from types import FrameType, TracebackType
from typing import Iterator, List, Optional, Tuple

from mmengine.config import Config
from moe_seg_plugin_startup.mmpretrain_extra import (MissingMmpretrainExtra,
                                                     extra_message, first_line,
                                                     torchvision_failed)

#: "Cls.__init__() got an unexpected keyword argument 'key'"
UNEXPECTED_KEYWORD = re.compile(
    r"(?P<owner>[\w.]+)\(\) got an unexpected keyword argument "
    r"'(?P<key>\w+)'")
#: Errors torch raises for a file that is not a whole checkpoint.
UNREADABLE = (RuntimeError, EOFError, pickle.UnpicklingError, OSError,
              ValueError, KeyError)


class SetupError(ValueError):
    """A mistake in the run's set-up (config, data, checkpoint), which the
    tools print as one line (``error: ...``) and exit with code 2."""


def as_setup_error(exc: BaseException) -> Optional[SetupError]:
    """``exc`` as a :class:`SetupError` if it is a known set-up mistake,
    else None (the caller keeps the original error).

    Args:
        exc: An error with its traceback.
    """
    from .data_errors import unreadable_data_file  # imports this module
    if isinstance(exc, SetupError):
        return exc
    for explain in (unreadable_checkpoint, unreadable_data_file,
                    unknown_keyword, unknown_type, missing_mmpretrain_extra):
        error = explain(exc)
        if error is not None:
            return error
    return None


def frames(tb: Optional[TracebackType]) -> List[FrameType]:
    """The frames of a traceback, innermost first."""
    found = []
    while tb is not None:
        found.append(tb.tb_frame)
        tb = tb.tb_next
    return found[::-1]


def _in_file(frame: FrameType, *suffixes: str) -> bool:
    name = frame.f_code.co_filename.replace('\\', '/')
    return any(name.endswith(suffix) for suffix in suffixes)


def unreadable_checkpoint(exc: BaseException) -> Optional[SetupError]:
    """A checkpoint file torch could not read (cut short, not a checkpoint).

    Only errors raised inside ``torch.load`` count: a readable checkpoint
    that does not fit the model fails later, with its own message.
    """
    if not isinstance(exc, UNREADABLE) or isinstance(exc, FileNotFoundError):
        return None
    loading = [
        f for f in frames(exc.__traceback__)
        if f.f_code.co_name == 'load'
        and _in_file(f, 'torch/serialization.py')
    ]
    if not loading:
        return None
    path = loading[-1].f_locals.get('f')
    name = repr(os.fspath(path)) if isinstance(
        path, (str, os.PathLike)) else 'the checkpoint'
    refused = refused_globals(exc)
    if refused is not None:
        return SetupError(
            f'checkpoint {name} holds objects that safe loading '
            f'(torch.load, weights_only=True) refuses: {refused}. A '
            f'checkpoint saved by MMEngine or this plugin holds none; if '
            f'you trust where the file came from, load it once in Python '
            f'with torch.load(path, weights_only=False), save its weights '
            f"(torch.save({{'state_dict': ckpt['state_dict']}}, "
            f"'clean.pth')) and point load_from / --resume / CHECKPOINT at "
            f'clean.pth')
    return SetupError(
        f'checkpoint {name} is not a readable checkpoint (cut short while '
        f'saving or copying, or not a torch file): {_reason(exc)}. Point '
        f'load_from / --resume / CHECKPOINT at a complete .pth file')


#: torch's names for what safe loading refused, e.g. "GLOBAL posix.system
#: whose module posix is blocked" or "Unsupported global: GLOBAL x.Y was
#: not an allowed global by default".
_REFUSED_GLOBAL = re.compile(r'GLOBAL ([\w.]+)(?: whose module ([\w.]+) '
                             r'is blocked)?')


def refused_globals(exc: BaseException) -> Optional[str]:
    """What torch's safe loading refused, if ``exc`` is that refusal.

    Returns:
        str or None: The refused globals (``'posix.system (its module posix
        is blocked)'``), or the unpickler's own reason when it names no
        global; None if ``exc`` is not a safe-loading refusal.
    """
    text = str(exc)
    if not text.startswith('Weights only load failed'):
        return None
    marker = 'WeightsUnpickler error:'
    detail = text.split(marker, 1)[1] if marker in text else ''
    detail = detail or text.split('\n', 1)[-1]
    names = []
    for match in _REFUSED_GLOBAL.finditer(detail):
        blocked = (f' (its module {match[2]} is blocked)'
                   if match[2] else ' (not allowed by default)')
        if match[1] + blocked not in names:
            names.append(match[1] + blocked)
    if names:
        return ', '.join(names)
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    return lines[0].rstrip('.') if lines else 'an object it does not know'


def _reason(exc: BaseException) -> str:
    """The first sentence of torch's message."""
    text = str(exc).strip() or type(exc).__name__
    first = text.splitlines()[0]
    return first.split('. ')[0].rstrip('.')


def _zoo_failure(exc: BaseException) -> Optional[str]:
    """Why mmpretrain's model zoo failed to import torchvision, if ``exc``
    (or an error it came from) is that failure, else None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, MissingMmpretrainExtra):
            return exc.reason
        in_zoo = any('/mmpretrain/' in f.f_code.co_filename.replace('\\', '/')
                     for f in frames(exc.__traceback__))
        if in_zoo and torchvision_failed(exc):  # start-up hook switched off
            return first_line(exc)
        exc = exc.__cause__ or exc.__context__
    return None


def missing_mmpretrain_extra(exc: BaseException) -> Optional[SetupError]:
    """An ``mmpretrain.*`` model in the config without the plugin's
    mmpretrain extra (torchvision missing or not fitting torch): names
    the config section and type, the extra and the install command."""
    reason = _zoo_failure(exc)
    if reason is None:
        return None
    stack = frames(exc.__traceback__)
    built_type, _ = _built_cfg(stack)
    cfg = _config(stack)
    section = next((path for path, node in _walk(cfg.to_dict(), '')
                    if node.get('type') == built_type),
                   None) if cfg is not None and built_type else None
    if section is not None:
        return SetupError(
            extra_message(reason, f'{section}: type={built_type!r}'))
    return SetupError(extra_message(reason))


def unknown_keyword(exc: BaseException) -> Optional[SetupError]:
    """A config section with a key its class does not take.

    Translated only when the key is found in the run's config (a section
    whose ``type`` is the class being built, if one is known): a keyword
    that comes from code, not from the config, keeps its traceback.
    """
    if not isinstance(exc, TypeError):
        return None
    match = UNEXPECTED_KEYWORD.search(str(exc))
    if match is None:
        return None
    key, owner = match['key'], match['owner'].split('.')[0]
    stack = frames(exc.__traceback__)
    cls = _built_class(stack, owner)
    built_type, defaults = _built_cfg(stack, cls)
    cfg = _config(stack)
    sections = _sections_with_key(cfg, key, built_type) if cfg else []
    if not sections:
        return None
    name = cls.__name__ if cls is not None else owner
    what = f'{name} (type={built_type!r})' if built_type and \
        built_type != name else name
    allowed = _keywords(cls, defaults) if cls is not None else []
    hint = f'; allowed: {allowed}' if allowed else ''
    return SetupError(f'{sections[0]}: unknown key {key!r} for {what}'
                      f'{hint}')


def _built_cfg(stack: List[FrameType],
               cls: Optional[type] = None) -> Tuple[Optional[str], dict]:
    """``type`` and ``default_args`` of the innermost registry build (of
    ``cls``, a base or a subclass of it, if given)."""
    for frame in stack:
        if frame.f_code.co_name != 'build_from_cfg' or not _in_file(
                frame, 'mmengine/registry/build_functions.py'):
            continue
        built = frame.f_locals.get('obj_cls')
        if cls is not None and not (isinstance(built, type) and (
                issubclass(cls, built) or issubclass(built, cls))):
            continue
        cfg = frame.f_locals.get('cfg') or {}
        kind = cfg.get('type') if isinstance(cfg, dict) else None
        defaults = frame.f_locals.get('default_args') or {}
        return (kind if isinstance(kind, str) else
                getattr(kind, '__name__', None)), dict(defaults)
    return None, {}


def _has_base(cls: type, name: str) -> bool:
    return any(klass.__name__ == name for klass in cls.__mro__)


def _config(stack: List[FrameType]) -> Optional[Config]:
    """The run's config: a Runner's ``cfg`` or a Config in a tool's frame,
    innermost first."""
    for frame in stack:
        owner = frame.f_locals.get('self')
        cfg = getattr(owner, 'cfg', None) if owner is not None else None
        if isinstance(cfg, Config):
            return cfg
        for value in frame.f_locals.values():
            if isinstance(value, Config):
                return value
    return None


def _sections_with_key(cfg: Config, key: str,
                       built_type: Optional[str]) -> List[str]:
    """Dotted paths of the config dicts holding ``key`` (those of type
    ``built_type`` first, if any)."""
    holding = [(path, node) for path, node in _walk(cfg.to_dict(), '')
               if key in node]
    typed = [path for path, node in holding
             if built_type and node.get('type') == built_type]
    return typed or [path for path, _ in holding]


def _walk(node, path: str) -> Iterator[Tuple[str, dict]]:
    """Every dict in a config tree with its dotted path."""
    if isinstance(node, dict):
        if path:
            yield path, node
        for name, value in node.items():
            yield from _walk(value, f'{path}.{name}' if path else str(name))
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _walk(value, f'{path}.{index}')


def _built_class(stack: List[FrameType], owner: str) -> Optional[type]:
    """The class being built when the error came: the innermost
    ``__init__``'s object or registry class with ``owner`` in its MRO,
    else the class of that name the raising code sees."""
    for frame in stack:
        candidate = None
        if frame.f_code.co_name == '__init__' and 'self' in frame.f_locals:
            candidate = type(frame.f_locals['self'])
        elif isinstance(frame.f_locals.get('obj_cls'), type):
            candidate = frame.f_locals['obj_cls']
        if candidate is not None and _has_base(candidate, owner):
            return candidate
    named = stack[0].f_globals.get(owner) if stack else None
    return named if isinstance(named, type) else None


def _keywords(cls: type, given: dict) -> List[str]:
    """The keywords ``cls(...)`` takes, following ``**kwargs`` up the MRO;
    those the builder passes itself (``given``) left out."""
    names: List[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        try:
            params = signature(init).parameters.values()
        except (TypeError, ValueError):
            return []
        names += [p.name for p in params if p.name != 'self' and p.kind
                  not in (Parameter.VAR_POSITIONAL, Parameter.VAR_KEYWORD)]
        if all(p.kind != Parameter.VAR_KEYWORD for p in params):
            break
    return sorted(set(names) - set(given))


def unknown_type(exc: BaseException) -> Optional[SetupError]:
    """An unknown ``type`` in a config section (the registry's KeyError),
    with the nearest registered names."""
    if not isinstance(exc, KeyError):
        return None
    stack = frames(exc.__traceback__)
    if not stack or not (stack[0].f_code.co_name == 'build_from_cfg'
                         and _in_file(stack[0],
                                      'mmengine/registry/build_functions.py')):
        return None
    built_type, _ = _built_cfg(stack)
    registry = stack[0].f_locals.get('registry')
    if not built_type or registry is None:
        return None
    cfg = _config(stack)
    sections = [
        path for path, node in _walk(cfg.to_dict(), '')
        if node.get('type') == built_type
    ] if cfg is not None else []
    where = f'{sections[0]}.type' if sections else 'type'
    names = _registered(registry)
    nearest = get_close_matches(built_type, names, n=5, cutoff=0.5)
    hint = f'; nearest: {nearest}' if nearest else ''
    return SetupError(f'{where}: {built_type!r} is not in the '
                      f'{registry.scope}::{registry.name} registry{hint}')


def _registered(registry) -> List[str]:
    """Names in a registry and its parents."""
    names: List[str] = []
    while registry is not None:
        names += list(registry.module_dict)
        registry = registry.parent
    return names
