"""A clear error when mmpretrain's model zoo needs the plugin's extra.

``backbone=dict(type='mmpretrain.ConvNeXt', ...)`` makes MMEngine import
``mmpretrain.models``, which imports torchvision. The default install
(``.[lite]``, torch 2.13) has no torchvision that imports beside its torch;
the ``mmpretrain`` extra installs a matching pair. When the import fails
for that reason, :class:`ExplainZooImport` re-raises it as
:class:`MissingMmpretrainExtra`, whose message names the extra and the
install command (the start-up hook wraps ``mmpretrain.models``' loader with
it, so MMSeg's own tools end with that line too). Standard library only.
"""
from types import ModuleType, TracebackType
from typing import Optional

from .loaders import WrappedLoader

#: The module MMEngine imports for the ``mmpretrain.`` registry scope.
ZOO_MODULE = 'mmpretrain.models'
#: How to install the extra from the registry and from a checkout.
INSTALL = 'pip install "moe_seg_plugin[mmpretrain]"'
INSTALL_FROM_CHECKOUT = 'pip install -e ".[mmpretrain]"'


class MissingMmpretrainExtra(ImportError):
    """mmpretrain's model zoo cannot be imported because torchvision is
    missing or does not fit the installed torch.

    Args:
        reason (str): The original error's first line.
    """

    def __init__(self, reason: str):
        super().__init__(extra_message(reason), name=ZOO_MODULE)
        self.reason = reason


def extra_message(reason: str, needed_by: str = "type='mmpretrain.*'") -> str:
    """The advice for a failed import of mmpretrain's model zoo.

    Args:
        reason (str): Why the import failed (the original error's text).
        needed_by (str): What needs the zoo (a config section and type).

    Returns:
        str: One line naming the extra and how to install it.
    """
    return (f"{needed_by} needs the plugin's mmpretrain extra (mmpretrain's "
            f'model zoo imports torchvision, which failed: {reason}); '
            f'install it with {INSTALL} (in a checkout: '
            f'{INSTALL_FROM_CHECKOUT}), which brings torch 2.14.1 and '
            f"torchvision 0.29.1 in place of the lite extra's torch")


def _tb_files(tb: Optional[TracebackType]):
    while tb is not None:
        yield tb.tb_frame.f_code.co_filename.replace('\\', '/')
        tb = tb.tb_next


def torchvision_failed(exc: BaseException) -> bool:
    """Whether ``exc`` comes from importing torchvision: missing
    (``No module named 'torchvision'``) or built for another torch
    (``operator torchvision::nms does not exist``)."""
    name = getattr(exc, 'name', None) or ''
    if isinstance(exc, ImportError) and name.split('.')[0] == 'torchvision':
        return True
    if 'torchvision' in str(exc):
        return True
    return any('/torchvision/' in path for path in _tb_files(
        exc.__traceback__))


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its class name if empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ExplainZooImport(WrappedLoader):
    """Wraps ``mmpretrain.models``' own loader; a torchvision failure while
    it runs is re-raised as :class:`MissingMmpretrainExtra`."""

    def exec_module(self, module: ModuleType) -> None:
        try:
            self.loader.exec_module(module)
        except MissingMmpretrainExtra:
            raise
        except Exception as exc:  # noqa: BLE001  (re-raised, explained)
            if not torchvision_failed(exc):
                raise
            raise MissingMmpretrainExtra(first_line(exc)) from exc
