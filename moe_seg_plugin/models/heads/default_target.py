"""The default PatchConvMoE target of a decode head: the last convolution
the head runs before its classifier (the paper's best placement).

One rule for every head, found by running it once: forward hooks on the
head's convolution units (:func:`conv_units`), a forward pass on tiny probe
inputs built from the head's own ``in_channels`` / ``in_index`` /
``input_transform``, and the last unit that ran before the classifier
``conv_seg`` (:func:`probe_target`). ``DEFAULT_TARGETS`` keeps a target by
hand only for heads where that rule gives the wrong answer or cannot run the
head; each entry says why.
"""
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Union

import torch
from mmseg.models.decode_heads.cascade_decode_head import \
    BaseCascadeDecodeHead
from torch import Tensor, nn

from ..injection import conv_paths, module_listing

DefaultTarget = Union[str, Callable[[nn.Module], str]]

#: Probe map side (the smallest map's in a pyramid, each level above it
#: twice as large).
MIN_PROBE_SIZE = 2
#: Probe batch size.
PROBE_BATCH = 1
#: Names (last path component) of the head's main classifier, and suffixes
#: of every classifier (DAHead's pam_conv_seg, DDRHead's aux_cls_seg, ...).
MAIN_CLASSIFIER = 'conv_seg'
CLASSIFIER_SUFFIXES = ('conv_seg', 'cls_seg')

#: Heads whose default target is set by hand, because the rule gives the
#: wrong answer for them or cannot run them. Every other head -- among them
#: the ones this table listed before the rule existed (ASPPHead, PSPHead,
#: DepthwiseSeparableASPPHead, LRASPPHead, FCNHead) -- gets its target from
#: the rule, which gives the same answers for those (tests pin them).
DEFAULT_TARGETS: Dict[str, DefaultTarget] = {
    # The rule finds the branch's last 1x1 expansion (bottleneck.ext.2);
    # ENet's unit of convolution is the whole 1x1-3x3-1x1 extension branch
    # of bottleneck 5.1, and its experts are copies of that branch.
    'ENetHead': 'bottleneck.ext',
    # The rule finds enc_module.encoding_project, which only feeds the
    # channel-attention branch (encoding -> fc -> per-channel gains); the
    # classifier reads the bottleneck's (or the lateral fusion's) map scaled
    # by those gains.
    'EncHead': lambda head: 'fusion' if head.add_lateral else 'bottleneck',
    # Its inputs are (feature map, class token) pairs from a ViT, which the
    # probe does not build; `project` is the 3x3 conv before `cls_seg`.
    'DPTHead': 'project',
    # DeepLabv3+ also reads backbone map 0 (the low-level skip, with
    # c1_in_channels channels) besides map `in_index`, which the probe cannot
    # know. The rule's answer where it can run (the last block of the
    # separable bottleneck, the decoder's last conv) is this one.
    'DepthwiseSeparableASPPHead':
    lambda head: f'sep_bottleneck.{len(head.sep_bottleneck) - 1}',
}


def is_classifier(path: str) -> bool:
    """Whether the module at ``path`` is a classifier, by MMSeg's naming."""
    return path.rpartition('.')[2].endswith(CLASSIFIER_SUFFIXES)


def _is_main_classifier(path: str) -> bool:
    return path.rpartition('.')[2] == MAIN_CLASSIFIER


def _is_written_out(sequential: nn.Sequential) -> bool:
    """Whether a conv-like ``nn.Sequential`` is one convolution block
    (conv, ConvModule or depthwise-separable conv) plus pixel-wise layers."""
    blocks = [
        path for path in conv_paths(sequential)
        if not isinstance(sequential.get_submodule(path), nn.Sequential)
    ]
    return len(blocks) == 1 and len(sequential) > 1


def conv_units(head: nn.Module) -> List[str]:
    """Paths of the head's convolution units, outermost first.

    A unit is a conv-like module holding one convolution block: an
    ``nn.Conv2d``, a ConvModule, a depthwise-separable conv, or a conv-like
    ``nn.Sequential`` of one such block and pixel-wise layers (a conv module
    written out, e.g. conv, BN, ReLU). Of any other conv-like
    ``nn.Sequential`` (several blocks, or one block alone: FCNHead's
    ``convs`` with ``num_convs=1``) the members are the units. Nothing
    inside a unit is a unit.

    Args:
        head (nn.Module): The decode head.

    Returns:
        list[str]: Dotted paths, in ``named_modules`` order.
    """
    units: List[str] = []
    for path in conv_paths(head):
        if any(path.startswith(unit + '.') for unit in units):
            continue
        module = head.get_submodule(path)
        if isinstance(module, nn.Sequential) and not _is_written_out(module):
            continue
        units.append(path)
    return units


def _table_target(head: nn.Module) -> Optional[str]:
    for cls in type(head).__mro__:
        rule = DEFAULT_TARGETS.get(cls.__name__)
        if rule is not None:
            return rule(head) if callable(rule) else rule
    return None


def default_target(head: nn.Module,
                   where: str = 'decode_head.moe.target') -> str:
    """The default MoE target of ``head``.

    Args:
        head (nn.Module): A built decode head (stock or wrapped, before the
            MoE layer is placed).
        where (str): Config key of the target, for error messages.

    Returns:
        str: The dotted path of the last conv the head runs before its
        classifier (``DEFAULT_TARGETS`` for the heads listed there).
    """
    target = _table_target(head)
    return target if target is not None else probe_target(head, where)


def head_name(head: nn.Module) -> str:
    """The head's class name (the stock name for a ``PatchMoE<Head>``)."""
    name = type(head).__name__
    stock = name[len('PatchMoE'):]
    if name.startswith('PatchMoE') and any(
            cls.__name__ == stock for cls in type(head).__mro__):
        return stock
    return name


def _no_conv_error(head: nn.Module, where: str) -> ValueError:
    paths = conv_paths(head)
    if not paths:
        advice = ('it has no conv-like module at all, so PatchConvMoE '
                  '(which replaces a 2-D convolution) cannot be placed in it')
    else:
        advice = ('set it to one of the conv-like paths (the classifier '
                  "'conv_seg' routes the classifier itself)")
    return ValueError(
        f'{where}: {head_name(head)} has no conv before the classifier to '
        f'replace by default; {advice}; {module_listing(head)}')


def probe_target(head: nn.Module,
                 where: str = 'decode_head.moe.target') -> str:
    """The last convolution unit ``head`` runs before its classifier.

    Runs the head once on tiny probe inputs (eval mode, no grad, the head's
    buffers, train/eval flags and the global RNG left as they were) with a
    forward hook on every unit of :func:`conv_units` and every classifier.
    The classifier is the first module named ``conv_seg`` that runs; a head
    without one (a depth head) ends in its predictor, the last unit to run.
    Classifiers (``*conv_seg``, ``*cls_seg``) are never the answer.

    Args:
        head (nn.Module): A built decode head.
        where (str): Config key of the target, for error messages.

    Returns:
        str: Dotted path of the unit.
    """
    units = conv_units(head)
    if all(is_classifier(unit) for unit in units):
        raise _no_conv_error(head, where)
    classifiers = [
        name for name, _ in head.named_modules()
        if name and is_classifier(name) and name not in units
    ]
    ran = _run_with_hooks(head, units + classifiers, where)
    main = [i for i, path in enumerate(ran) if _is_main_classifier(path)]
    before = ran[:main[0]] if main else ran[:-1]
    candidates = [path for path in before if not is_classifier(path)]
    if not candidates:
        raise _no_conv_error(head, where)
    return candidates[-1]


def _run_with_hooks(head: nn.Module, paths: List[str],
                    where: str) -> List[str]:
    """Paths of the hooked modules in the order their forwards finished
    (in the probe pass that ran through)."""
    ran: List[str] = []
    handles = [
        head.get_submodule(path).register_forward_hook(
            lambda *_, path=path: ran.append(path)) for path in paths
    ]
    try:
        _probe_forward(head, where, ran)
    finally:
        for handle in handles:
            handle.remove()
    return ran


def _probe_forward(head: nn.Module, where: str, ran: List[str]) -> None:
    """Run ``head`` once on the first probe input it accepts, leaving its
    state as it was; ``ran`` is emptied before each try."""
    modes = {module: module.training for module in head.modules()}
    buffers = {module: dict(module._buffers) for module in head.modules()}
    saved = {name: b.clone() for name, b in head.named_buffers()}
    like = _tensor_kwargs(head)
    cuda = [like['device']] if like['device'].type == 'cuda' else []
    try:
        head.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=cuda):
            error = _first_run(head, _probe_args(head, like), ran)
    finally:
        _restore(head, modes, buffers, saved)
    if error is not None:
        raise ValueError(
            f'{where}: could not run {head_name(head)} on probe inputs to '
            f'find its last conv before the classifier ({error}); set it to '
            f'a conv-like path; {module_listing(head)}')


def _first_run(head: nn.Module, candidates: Iterator[list],
               ran: List[str]) -> Optional[str]:
    """Call ``head`` on each candidate until one runs through.

    Returns:
        str | None: None if one ran, else the first candidate's error.
    """
    errors = []
    for args in candidates:
        ran.clear()
        try:
            head(*args)
            return None
        except Exception as exc:  # an input layout the head does not take
            errors.append(f'{type(exc).__name__}: {exc}')
    return errors[0] if errors else 'no in_channels to build inputs from'


def _restore(head: nn.Module, modes: dict, buffers: dict,
             saved: Dict[str, Tensor]) -> None:
    """Undo what a forward pass may do to a head: train/eval flags, buffer
    values, and buffers registered during the pass."""
    for module, training in modes.items():
        module.training = training
    for module, before in buffers.items():
        for name in set(module._buffers) - set(before):
            del module._buffers[name]
        module._buffers.update(before)
    with torch.no_grad():
        for name, buffer in head.named_buffers():
            if name in saved and buffer is not None:
                buffer.copy_(saved[name])


def _tensor_kwargs(head: nn.Module) -> dict:
    """Device and dtype of the head's parameters."""
    for param in head.parameters():
        return dict(device=param.device, dtype=param.dtype)
    return dict(device=torch.device('cpu'), dtype=torch.float32)


def _is_cascade(head: nn.Module) -> bool:
    """Whether ``forward`` also takes the previous head's logits."""
    return isinstance(head, BaseCascadeDecodeHead)


def _input_spec(head: nn.Module) -> nn.Module:
    """The module whose ``in_channels`` describe the head's inputs: the
    head, or the first decode head inside it (K-Net's generator)."""
    if isinstance(getattr(head, 'in_channels', None), (int, list, tuple)):
        return head
    for module in head.modules():
        if module is not head and isinstance(
                getattr(module, 'in_channels', None), int) and hasattr(
                    module, '_transform_inputs'):
            return module
    return head


def _selected(spec: nn.Module) -> List[int]:
    """Indices into the backbone outputs that the head reads."""
    index = getattr(spec, 'in_index', None)
    if index is None:
        return list(range(len(spec.in_channels)))
    return list(index) if isinstance(index, (list, tuple)) else [index]


def _channels(spec: nn.Module, count: int) -> List[int]:
    """Channels of each selected map."""
    channels = spec.in_channels
    if getattr(spec, 'input_transform', None) == 'resize_concat':
        # `in_channels` is the sum after concatenation; any split works.
        return [channels - count + 1] + [1] * (count - 1)
    if isinstance(channels, int):
        return [channels] * count
    return list(channels)


def _window(head: nn.Module) -> int:
    """The largest fixed pooling window in the head (LRASPPHead pools
    49x49), so probe maps are never smaller."""
    size = 0
    for module in head.modules():
        if isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)):
            kernel = module.kernel_size
            pad = module.padding
            kernel = kernel if isinstance(kernel, int) else max(kernel)
            pad = pad if isinstance(pad, int) else min(pad)
            size = max(size, kernel - 2 * pad)
    return size


def _probe_args(head: nn.Module, like: dict) -> Iterator[list]:
    """Candidate ``forward`` arguments, in the order they are tried; cascade
    heads also get fake ``prev_output`` logits the size of the first
    selected map."""
    for inputs, first in _layouts(head, like):
        if _is_cascade(head):
            logits = torch.randn(PROBE_BATCH, head.num_classes,
                                 *first.shape[2:], **like)
            yield [inputs, logits]
        else:
            yield [inputs]


def _layouts(head: nn.Module, like: dict) -> List[tuple]:
    """Probe inputs and their first selected map: maps of one size (the
    cheapest; ViT features), a feature pyramid (each map twice the next
    one's size; heads that add up levels), and the selected map alone
    (DDRHead and PIDHead take it so in eval)."""
    spec = _input_spec(head)
    if not isinstance(getattr(spec, 'in_channels', None), (int, list, tuple)):
        return []
    selected = _selected(spec)
    channels = _channels(spec, len(selected))
    smallest = max(MIN_PROBE_SIZE, _window(head))
    length = max(i + 1 if i >= 0 else -i for i in selected)
    pyramid = [smallest * 2**(length - 1 - i) for i in range(length)]
    layouts = []
    for sizes in ([smallest] * length, pyramid):
        maps = _maps(selected, channels, sizes, like)
        layouts.append((maps, maps[selected[0]]))
    if len(selected) == 1:
        alone = layouts[0][1]
        layouts.append((alone, alone))
    return layouts


def _maps(selected: Sequence[int], channels: Sequence[int],
          sizes: Sequence[int], like: dict) -> List[Tensor]:
    """A list of maps; the selected ones with their channels, the others
    one-channel stand-ins."""
    per_map = [1] * len(sizes)
    for index, count in zip(selected, channels):
        per_map[index] = count
    return [
        torch.randn(PROBE_BATCH, c, s, s, **like)
        for c, s in zip(per_map, sizes)
    ]


__all__ = [
    'DEFAULT_TARGETS', 'default_target', 'probe_target', 'conv_units',
    'is_classifier', 'head_name'
]
