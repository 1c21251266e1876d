"""Refusal of a checkpoint that does not fit the model.

MMEngine loads whatever part of a checkpoint fits and only warns about the
rest, so a checkpoint of another model (ENet weights in ERFNet, ResNet-18
in ResNet-50) gives a mostly random model and a run that goes on.
:func:`check_checkpoint_fits` compares the checkpoint's tensors with the
model's and refuses when too few fit:

* a tensor *fits* when the model has an entry of that name (after
  MMEngine's default key revision, a leading ``module.`` stripped) and
  shape; the dense weights of a module a PatchConvMoE layer replaced fit
  when they have that layer's experts' shapes (the layer upcycles or drops
  them);
* refused: fewer than :data:`MIN_FITTING_SHARE` of the checkpoint's
  tensors fit (another architecture: its names differ), or more than
  :data:`MAX_MISMATCHED_SHARE` of them have another shape (the same
  architecture at another depth or width).

Still loaded, with MMEngine's warnings: a backbone-only or head-only
checkpoint (all it holds fits; what the model has beyond it is not
counted), a checkpoint with another number of classes (only the
classifiers differ: a few tensors) and a stock dense checkpoint in the MoE
variant of its model. A checkpoint with another number of experts passes
here and is refused by the PatchConvMoE layer itself, with its own message.

:class:`CheckpointFitHook` checks a checkpoint when the Runner loads it
(``load_from``, ``--resume``, tools/test.py), before its weights go into
the model; the tools that load weights without a Runner call
:func:`load_fitting_checkpoint` (or, before MMSeg's ``init_model`` loads
the weights itself, :func:`check_checkpoint_file`) instead.
"""
import re
import sys
from collections.abc import Mapping
from typing import Dict, List, Optional, Tuple

from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmseg.registry import HOOKS
from torch import Tensor, nn

from ..moe import PatchConvMoE
from ..moe.loading import dense_entries
from .errors import SetupError

#: Below this share of the checkpoint's tensors fitting, it is refused.
MIN_FITTING_SHARE = 0.5
#: Above this share of them with another shape, it is refused.
MAX_MISMATCHED_SHARE = 0.25
#: MMEngine's default key revision when it loads a checkpoint.
REVISE_KEYS = ((r'^module\.', ''), )
#: Offending keys named in the message, of each kind.
SHOWN = 3

Shape = Tuple[int, ...]


def _unwrap(model: nn.Module) -> nn.Module:
    """The module the weights go into (inside DDP and TTA wrappers, as
    MMEngine's ``load_state_dict`` unwraps them)."""
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def state_dict_of(checkpoint: Mapping) -> Mapping:
    """The state dict of a loaded checkpoint (its ``state_dict`` entry, or
    the checkpoint itself if it is a bare state dict), keys revised as
    MMEngine revises them by default."""
    state = checkpoint.get('state_dict', checkpoint)
    revised = {}
    for key, value in state.items():
        for pattern, replacement in REVISE_KEYS:
            key = re.sub(pattern, replacement, key)
        revised[key] = value
    return revised


def expected_shapes(model: nn.Module) -> Dict[str, Shape]:
    """Every entry the model takes from a checkpoint, with its shape: its
    own state dict, plus the dense entries each PatchConvMoE layer accepts
    for the module it replaced (its experts' shapes)."""
    model = _unwrap(model)
    shapes = {
        key: tuple(value.shape)
        for key, value in model.state_dict().items()
        if isinstance(value, Tensor)
    }
    for path, layer in model.named_modules():
        if not isinstance(layer, PatchConvMoE):
            continue
        dense = dense_entries(layer)  # named as the dense module's
        prefix = f'{path}.' if path else ''
        for key in layer._dense_keys:
            if isinstance(dense.get(key), Tensor):
                shapes.setdefault(prefix + key, tuple(dense[key].shape))
    return shapes


class CheckpointFit:
    """How a checkpoint's tensors fit a model.

    Attributes:
        fitting (list[str]): Keys the model has, with the same shape.
        mismatched (list[tuple]): ``(key, checkpoint shape, model shape)``
            of keys the model has with another shape.
        unknown (list[str]): Keys the model does not have.
        model_size (int): Tensors in the model's state dict.
    """

    def __init__(self, model: nn.Module, checkpoint: Mapping) -> None:
        shapes = expected_shapes(model)
        self.model_size = len(_unwrap(model).state_dict())
        self.fitting: List[str] = []
        self.mismatched: List[Tuple[str, Shape, Shape]] = []
        self.unknown: List[str] = []
        for key, value in state_dict_of(checkpoint).items():
            if not isinstance(value, Tensor):
                continue
            if key not in shapes:
                self.unknown.append(key)
            elif tuple(value.shape) != shapes[key]:
                self.mismatched.append((key, tuple(value.shape),
                                        shapes[key]))
            else:
                self.fitting.append(key)

    @property
    def total(self) -> int:
        """Tensors in the checkpoint."""
        return len(self.fitting) + len(self.mismatched) + len(self.unknown)

    def problem(self) -> Optional[str]:
        """Why the checkpoint does not fit, or None if it does."""
        if not self.total:
            return 'it holds no tensors'
        if len(self.fitting) < MIN_FITTING_SHARE * self.total:
            return (f'fewer than {MIN_FITTING_SHARE:.0%} of its tensors '
                    'fit')
        if len(self.mismatched) > MAX_MISMATCHED_SHARE * self.total:
            return (f'more than {MAX_MISMATCHED_SHARE:.0%} of its tensors '
                    'have another shape')
        return None

    def describe(self) -> str:
        """The counts and the first offending keys."""
        text = (f'{len(self.fitting)} of its {self.total} tensors fit, '
                f'{len(self.mismatched)} have another shape, '
                f'{len(self.unknown)} are unknown to the model (which has '
                f'{self.model_size})')
        if self.mismatched:
            shown = ', '.join(
                f'{key!r} {ours} in the checkpoint, {theirs} in the model'
                for key, ours, theirs in self.mismatched[:SHOWN])
            text += f'; other shape: {shown}{_more(self.mismatched)}'
        if self.unknown:
            shown = ', '.join(repr(key) for key in self.unknown[:SHOWN])
            text += f'; unknown: {shown}{_more(self.unknown)}'
        return text


def _more(items: list) -> str:
    return f' (+{len(items) - SHOWN} more)' if len(items) > SHOWN else ''


def check_checkpoint_fits(model: nn.Module, checkpoint: Mapping,
                          source: str) -> None:
    """Refuse a checkpoint that fits ``model`` too little (see the module's
    docstring for the rule).

    Args:
        model (nn.Module): The model the weights are for (a DDP or TTA
            wrapper is looked through).
        checkpoint (Mapping): The loaded checkpoint: a dict with
            ``state_dict``, or a bare state dict.
        source (str): The checkpoint's file, for the message.

    Raises:
        SetupError: One line naming the file, the rule it breaks, the
            counts (fitting / other shape / unknown to the model, of how
            many), the first offending keys with both shapes, and the
            likely cause.
    """
    fit = CheckpointFit(model, checkpoint)
    problem = fit.problem()
    if problem is None:
        return
    raise SetupError(
        f'checkpoint {source!r} does not fit the model ({problem}): '
        f'{fit.describe()}. Likely a checkpoint of another model or config: '
        'check CHECKPOINT / load_from')


def check_checkpoint_file(model: nn.Module, filename: str,
                          map_location='cpu') -> dict:
    """Read a checkpoint file as MMEngine does and check it against
    ``model`` (:func:`check_checkpoint_fits`).

    Returns:
        dict: The loaded checkpoint.

    Raises:
        SetupError: If the file holds no dict or does not fit the model.
    """
    from mmengine.runner.checkpoint import _load_checkpoint
    checkpoint = _load_checkpoint(filename, map_location)
    if not isinstance(checkpoint, Mapping):
        raise SetupError(f'checkpoint {filename!r} holds no state dict '
                         f'(a {type(checkpoint).__name__})')
    check_checkpoint_fits(model, checkpoint, filename)
    return checkpoint


def load_fitting_checkpoint(model: nn.Module, filename: str,
                            map_location='cpu') -> dict:
    """MMEngine's ``load_checkpoint(model, filename)``, the checkpoint
    checked by :func:`check_checkpoint_fits` before any weight goes into
    the model.

    Returns:
        dict: The loaded checkpoint.

    Raises:
        SetupError: If the checkpoint does not fit the model.
    """
    from mmengine.runner.checkpoint import _load_checkpoint_to_model
    checkpoint = check_checkpoint_file(model, filename, map_location)
    return _load_checkpoint_to_model(model, checkpoint,
                                     revise_keys=list(REVISE_KEYS))


def _loading_file(runner) -> str:
    """The file the runner is loading: ``Runner.load_checkpoint``'s
    ``filename``, else its ``load_from``."""
    frame = sys._getframe(1)
    while frame is not None:
        if (frame.f_code.co_name == 'load_checkpoint'
                and frame.f_locals.get('self') is runner
                and isinstance(frame.f_locals.get('filename'), str)):
            return frame.f_locals['filename']
        frame = frame.f_back
    return str(getattr(runner, '_load_from', None) or 'the checkpoint')


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Refuses, at ``after_load_checkpoint`` (which the Runner calls after
    reading a checkpoint and before loading it into the model), a
    checkpoint that does not fit the runner's model; see
    :func:`check_checkpoint_fits`."""

    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if isinstance(checkpoint, Mapping):
            check_checkpoint_fits(runner.model, checkpoint,
                                  _loading_file(runner))
