"""The loader wrapper the start-up hook puts around a module's own loader.

Standard library only (the hook runs at interpreter start-up).
"""
import importlib.abc
from types import ModuleType
from typing import Optional


class WrappedLoader(importlib.abc.Loader):
    """Delegates everything to a module's own ``loader``; subclasses
    override :meth:`exec_module` to act around the module's code.

    Args:
        loader (importlib.abc.Loader): The loader the module would have had.
    """

    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec) -> Optional[ModuleType]:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)

    def __getattr__(self, name: str):
        return getattr(self.loader, name)
