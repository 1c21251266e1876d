"""Loading a checkpoint into a PatchConvMoE layer.

Two steps, run by the layer's ``_load_from_state_dict`` before torch loads
its entries: :func:`check_entries` refuses entries that do not fit the
layer (another number of experts, other shapes), where non-strict loading
would only warn and train on; :func:`upcycle_dense_entries` turns the
entries of the dense module the layer replaced (a stock checkpoint) into
every expert's ('upcycling', ``expert_init='copy'``) or drops them with a
warning naming both choices (``expert_init='random'``).
"""
import logging
import re
from typing import Dict, Optional

from torch import Tensor, nn

from .experts import add_relative_noise

logger = logging.getLogger('moe_seg_plugin')

#: The layer's expert groups and the settings that size them.
GROUPS = (('experts', 'num_experts'),
          ('shared_experts', 'num_shared_experts'))


def _where(prefix: str) -> str:
    return prefix.rstrip('.') or '<root>'


def expert_counts(state_dict: dict, prefix: str) -> Dict[str, int]:
    """How many routed and shared experts the checkpoint holds under
    ``prefix`` (``{'experts': n, 'shared_experts': m}``)."""
    counts = {}
    for group, _ in GROUPS:
        pattern = re.compile(re.escape(f'{prefix}{group}.') + r'(\d+)\.')
        counts[group] = len({
            int(match.group(1))
            for match in map(pattern.match, state_dict) if match
        })
    return counts


def expert_key(layer: nn.Module, dense_key: str) -> Optional[str]:
    """Where a dense module's entry goes in each expert: the same key, or
    with ``expert_scope='conv'`` the key inside the convolution (None for
    an entry of the tail after it, which the layer holds once)."""
    path = layer.conv_path
    if path is None or not path:
        return dense_key
    if dense_key.startswith(path + '.'):
        return dense_key[len(path) + 1:]
    return None


def dense_entries(layer: nn.Module) -> Dict[str, Tensor]:
    """The layer's tensors as the dense module it replaced names them
    (its first expert's; with the conv scope, and the tail's)."""
    path = layer.conv_path
    entries = {} if layer.stem is not None else {  # low-rank: no conv
        (f'{path}.{key}' if path else key): value
        for key, value in layer.experts[0].state_dict().items()}
    if layer.tail is not None:
        entries.update(layer.tail.state_dict())
    return entries


def check_entries(layer: nn.Module, state_dict: dict, prefix: str) -> None:
    """Refuse a checkpoint whose entries for ``layer`` do not fit it.

    A checkpoint with expert entries must hold as many (routed and shared)
    experts as the layer, and every entry under the layer's prefix (or the
    dense module's, for upcycling) must have the layer's shape: loading it
    otherwise leaves experts untrained while the run goes on.

    Args:
        layer (PatchConvMoE): The layer being loaded.
        state_dict (dict): The whole state dict being loaded.
        prefix (str): The layer's key prefix in it.

    Raises:
        ValueError: Naming the layer and both counts or shapes.
    """
    where = _where(prefix)
    counts = expert_counts(state_dict, prefix)
    has_experts = any(counts.values())
    for group, setting in GROUPS:
        modules = getattr(layer, group)
        if has_experts and counts[group] != len(modules):
            raise ValueError(
                f"checkpoint: PatchConvMoE layer '{where}' has "
                f'{len(modules)} {group.replace("_", " ")}, the checkpoint '
                f'has {counts[group]}; build the model with '
                f'{setting}={counts[group]} to load it (a dense checkpoint, '
                'without expert entries, is upcycled into any number of '
                'experts)')
    own = layer.state_dict()
    if not has_experts and layer.experts:
        own.update(dense_entries(layer))
    for key, value in own.items():
        entry = state_dict.get(prefix + key)
        if (isinstance(entry, Tensor) and isinstance(value, Tensor)
                and entry.shape != value.shape):
            raise ValueError(
                f"checkpoint: PatchConvMoE layer '{where}': entry "
                f"'{prefix}{key}' has shape {tuple(entry.shape)}, the layer "
                f'needs {tuple(value.shape)}; the checkpoint is of another '
                'model (architecture, channels or classes)')


def upcycle_dense_entries(layer: nn.Module, state_dict: dict,
                          prefix: str) -> None:
    """Take the dense module's entries out of ``state_dict``; with
    ``expert_init='copy'`` put them back as every expert's (plus relative
    noise on the parameters), else say that they are not used.

    Args:
        layer (PatchConvMoE): The layer being loaded (its ``_dense_keys``,
            ``_dense_params``, ``expert_init``, ``init_noise``).
        state_dict (dict): The whole state dict being loaded (changed in
            place).
        prefix (str): The layer's key prefix in it.
    """
    dense = {
        key: state_dict.pop(prefix + key)
        for key in layer._dense_keys if prefix + key in state_dict
    }
    if not dense:
        return
    where, names = _where(prefix), ', '.join(sorted(dense))
    if layer.expert_init != 'copy':
        logger.warning(
            f"PatchConvMoE '{where}': the checkpoint holds the dense "
            f"layer's weights ({names}); with expert_init='random' they are "
            'not used and the experts keep their fresh initialisation '
            '(their keys are missing from the checkpoint): keep '
            "expert_init='random' to train fresh experts, or set "
            "expert_init='copy' to upcycle the dense weights into the "
            'experts')
        return
    for key, value in dense.items():
        if expert_key(layer, key) is None:  # the conv scope's tail, once
            state_dict[f'{prefix}tail.{key}'] = value
    for group, _ in GROUPS:
        for index in range(len(getattr(layer, group))):
            for key, value in dense.items():
                inside = expert_key(layer, key)
                if inside is None:
                    continue
                copy = value.clone()
                if key in layer._dense_params:
                    add_relative_noise(copy, layer.init_noise)
                state_dict[f'{prefix}{group}.{index}.{inside}'] = copy
    shared = len(layer.shared_experts)
    logger.info(
        f"PatchConvMoE '{where}': upcycled the dense layer's weights "
        f'({names}) into {len(layer.experts)} experts'
        + (f' and {shared} shared experts' if shared else '')
        + f' (relative noise {layer.init_noise:g}); the gate keeps its own '
        'initialisation')
