"""Registers the torch-only core into ``mmseg.registry.MODELS`` and routes
its log messages into MMEngine's logger."""
import logging

from mmengine.logging import print_log
from mmseg.registry import MODELS

from ..moe import BALANCE_LOSSES, GATES, PatchConvMoE

_registered = False


def _from_mmseg(name: str):
    """Find a gate or loss a user registered into MMSeg's MODELS."""
    return MODELS.get(name)


class MMEngineLogHandler(logging.Handler):
    """Forwards the core's ``logging`` records to MMEngine's current logger
    (so they reach the run's log file)."""

    def emit(self, record: logging.LogRecord) -> None:
        print_log(record.getMessage(), logger='current', level=record.levelno)


def route_core_logs() -> None:
    """Send the 'moe_seg_plugin' logger's INFO and above to MMEngine."""
    logger = logging.getLogger('moe_seg_plugin')
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, MMEngineLogHandler) for h in logger.handlers):
        logger.addHandler(MMEngineLogHandler())


def register_core() -> None:
    """Register PatchConvMoE, the gates and the balancing losses (once).

    Also lets the core build gates and losses that users register in
    ``MODELS`` themselves.
    """
    global _registered
    if _registered:
        return
    route_core_logs()
    MODELS.register_module(module=PatchConvMoE)
    for table in (GATES, BALANCE_LOSSES):
        for cls in table.classes.values():
            MODELS.register_module(module=cls)
        table.fallback = _from_mmseg
    _registered = True
