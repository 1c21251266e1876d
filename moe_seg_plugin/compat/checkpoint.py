"""Lets torch >= 2.6 safe loading read MMEngine checkpoints.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True`` and refuses
any class it has not been told is safe. MMEngine 0.10.7 calls ``torch.load``
without the argument, so resuming, ``load_from`` and inference on checkpoints
saved by MMEngine fail with ``Unsupported global: mmengine.logging.
history_buffer.HistoryBuffer``. Instead of switching safe loading off, the
classes MMEngine itself writes into a checkpoint's ``meta`` and
``message_hub`` (plus the numpy types those hold) are added to torch's
allow-list; everything else is still refused.

One entry needs care: a pickled ``HistoryBuffer`` keeps its statistics
methods as ``getattr(HistoryBuffer, 'mean')`` and so on. Rather than allowing
the builtin ``getattr`` (which would reach any attribute of any allowed
object), the name ``builtins.getattr`` is mapped to
:func:`history_buffer_getattr`, which hands out HistoryBuffer's public
methods and refuses everything else.
"""
import pickle
from typing import Any, List

import numpy as np
import torch


def history_buffer_getattr(owner: Any, name: str) -> Any:
    """``getattr`` limited to what MMEngine checkpoints ask of it.

    Args:
        owner: Must be ``mmengine.logging.HistoryBuffer``.
        name (str): A public method of it (``'min'``, ``'mean'``, ...).

    Returns:
        The method.
    """
    from mmengine.logging import HistoryBuffer
    if (owner is HistoryBuffer and not name.startswith('_')
            and callable(getattr(HistoryBuffer, name, None))):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({owner!r}, {name!r}) while loading a checkpoint: '
        'only HistoryBuffer statistics methods are allowed')


def mmengine_checkpoint_globals() -> List[object]:
    """The classes and functions an MMEngine checkpoint is made of.

    Returns:
        list: Objects to pass to ``torch.serialization.add_safe_globals``.
    """
    from mmengine.config import ConfigDict
    from mmengine.logging import HistoryBuffer

    multiarray = getattr(np, '_core', None) or np.core
    safe = [
        HistoryBuffer,
        ConfigDict,
        np.ndarray,
        np.dtype,
        multiarray.multiarray._reconstruct,
        multiarray.multiarray.scalar,
        (history_buffer_getattr, 'builtins.getattr'),
    ]
    # numpy >= 1.25 pickles dtypes by their own classes (Float64DType, ...).
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        safe += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType')
        ]
    return safe


def allow_mmengine_checkpoints() -> bool:
    """Add MMEngine's checkpoint classes to torch's safe-loading allow-list.

    Returns:
        bool: False on torch releases without ``add_safe_globals`` (they do
        not load safely by default, so nothing is needed).
    """
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:
        return False
    add_safe_globals(mmengine_checkpoint_globals())
    return True
