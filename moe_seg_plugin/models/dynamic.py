"""Wrapper classes made on the fly: ``PatchMoE<Base>`` = a mixin + a stock
MMSeg class, so the object *is* the stock class (same attributes and
state-dict keys) with the mixin's behaviour on top."""
from typing import Callable, Dict, List

from mmseg.registry import MODELS


class WrapperFactory:
    """Makes and caches ``PatchMoE<Base>`` classes for one mixin.

    Args:
        mixin (type): The wrapper class placed first in the MRO.
        module (str): Module the classes claim to live in (that module's
            ``__getattr__`` calls :meth:`by_name`, so pickle finds them).
        allowed (callable): Names of the stock classes that may be wrapped.
        key (str): Config key naming the base, for error messages.
        kind (str): What the base is ('decode head', 'segmentor').
    """

    def __init__(self, mixin: type, module: str,
                 allowed: Callable[[], List[str]], key: str,
                 kind: str) -> None:
        self.mixin = mixin
        self.module = module
        self.allowed = allowed
        self.key = key
        self.kind = kind
        self.classes: Dict[str, type] = {}

    def __call__(self, base_name: str) -> type:
        """The class ``PatchMoE<base_name>``."""
        if base_name in self.classes:
            return self.classes[base_name]
        allowed = self.allowed()
        if not isinstance(base_name, str) or base_name not in allowed:
            raise ValueError(f'{self.key}: {base_name!r} is not a registered '
                             f'{self.kind}; allowed: {allowed}')
        name = f'PatchMoE{base_name}'
        cls = type(name, (self.mixin, MODELS.get(base_name)), {
            '__module__': self.module,
            '__qualname__': name,
            '__doc__': f'{base_name} wrapped by {self.mixin.__name__}.',
        })
        self.classes[base_name] = cls
        return cls

    def by_name(self, name: str) -> type:
        """Resolve ``PatchMoE<Base>`` (for unpickling)."""
        if name.startswith('PatchMoE') and name != self.mixin.__name__:
            return self(name[len('PatchMoE'):])
        raise AttributeError(f'module {self.module!r} has no attribute '
                             f'{name!r}')
