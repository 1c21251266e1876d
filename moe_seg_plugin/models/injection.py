"""The one mechanism that puts PatchConvMoE layers into MMSeg modules.

Everything that places a MoE layer (the decode-head wrapper, and any later
placement in backbones or segmentors) goes through :func:`inject_moe`, and
everything that reads them back (losses, metrics, analysis) through
:func:`moe_layers` and :func:`moe_loss_terms`.
"""
import difflib
import inspect
from typing import Dict, List, Optional, Tuple

from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper
from torch import Tensor, nn

from ..moe import PatchConvMoE, routing_health
from ..moe.geometry import conv_stages

MOE_SETTINGS = tuple(
    name for name in inspect.signature(PatchConvMoE).parameters
    if name != 'module')


def is_conv_like(module: nn.Module) -> bool:
    """Whether PatchConvMoE can replace ``module``."""
    if not isinstance(module, nn.Module):
        return False
    try:
        conv_stages(module)
    except ValueError:
        return False
    return any(isinstance(m, nn.Conv2d) for m in module.modules())


def conv_paths(root: nn.Module) -> List[str]:
    """Dotted paths of the conv-like modules inside ``root``.

    A conv-like ``nn.Sequential`` is listed together with its members; the
    inner ``conv`` of a ConvModule is not listed apart from it.
    """
    paths: List[str] = []
    atomic: List[str] = []
    for name, module in root.named_modules():
        if not name or any(name.startswith(p + '.') for p in atomic):
            continue
        if is_conv_like(module):
            paths.append(name)
            if not isinstance(module, nn.Sequential):
                atomic.append(name)
    return paths


def module_listing(root: nn.Module,
                   near: Optional[str] = None) -> str:
    """The conv-like paths of ``root`` for an error message: those closest
    to ``near`` first when some are close, then all of them."""
    paths = conv_paths(root)
    if near:
        close = difflib.get_close_matches(near, paths, n=5, cutoff=0.4)
        if close:
            return f'nearest conv-like paths: {close}; all: {paths}'
    return f'conv-like paths: {paths}'


def get_module(root: nn.Module, path: str, where: str) -> nn.Module:
    """The submodule at dotted ``path``; ValueError listing valid paths."""
    module = root
    for part in path.split('.'):
        child = module._modules.get(part) if part else None
        if child is None:
            raise ValueError(
                f'{where}: no module at {path!r} in '
                f'{type(root).__name__}; {module_listing(root, path)}')
        module = child
    return module


def _parent(root: nn.Module, path: str) -> Tuple[nn.Module, str]:
    parent_path, _, name = path.rpartition('.')
    parent = root
    for part in parent_path.split('.') if parent_path else []:
        parent = parent._modules[part]
    return parent, name


def inject_moe(root: nn.Module, target: str, settings: dict,
               where: str) -> PatchConvMoE:
    """Replace the conv-like module at ``target`` by a PatchConvMoE.

    Args:
        root (nn.Module): The module that holds the target.
        target (str): Dotted path of the module to replace.
        settings (dict): PatchConvMoE settings (all but ``module``).
        where (str): Config key of the setting, for error messages
            (e.g. 'decode_head.moe').

    Returns:
        PatchConvMoE: The new layer, now at ``target``.
    """
    unknown = sorted(set(settings) - set(MOE_SETTINGS))
    if unknown:
        raise ValueError(f'{where}: unknown setting(s) {unknown}; allowed: '
                         f"['target'] + {sorted(MOE_SETTINGS)}")
    module = get_module(root, target, f'{where}.target')
    if isinstance(module, PatchConvMoE):
        raise ValueError(f'{where}.target: {target!r} is already a '
                         'PatchConvMoE layer')
    if not is_conv_like(module):
        raise ValueError(
            f'{where}.target: {target!r} is a {type(module).__name__}, not '
            f'a conv-like module; {module_listing(root, target)}')
    try:
        layer = PatchConvMoE(module, **settings)
    except ValueError as exc:
        raise ValueError(f'{where}: {exc}') from exc
    parent, name = _parent(root, target)
    setattr(parent, name, layer)
    print_log(
        f'{where}: {type(root).__name__}.{target} '
        f'({type(module).__name__}) is now PatchConvMoE('
        f'{layer.extra_repr()}, gate={type(layer.gate).__name__}, '
        f'expert_init={layer.expert_init!r})', logger='current')
    return layer


def segmentor_of(model: nn.Module) -> nn.Module:
    """The model inside MMEngine's wrappers (DDP, FSDP) and MMSeg's
    test-time augmentation model, so layer paths do not depend on them."""
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def moe_layers(root: nn.Module) -> Dict[str, PatchConvMoE]:
    """Every PatchConvMoE inside ``root`` by dotted path."""
    return {
        name: module
        for name, module in root.named_modules()
        if isinstance(module, PatchConvMoE)
    }


def moe_loss_terms(root: nn.Module,
                   owned_elsewhere: Tuple[str, ...] = (),
                   name_layers: bool = False) -> Dict[str, Tensor]:
    """Balancing losses and routing metrics of the last forward pass.

    Keys of balancing losses contain 'loss' (MMSeg sums them); metrics are
    ``moe_usage_entropy`` and ``moe_dominant_share``. With several layers
    (or ``name_layers``), each key ends in ``.<layer path>``.

    Args:
        root (nn.Module): Where to look for PatchConvMoE layers.
        owned_elsewhere (tuple[str]): Path prefixes whose layers report
            their terms themselves (e.g. inside a PatchMoEHead).
        name_layers (bool): Suffix the layer path even for one layer.

    Returns:
        dict[str, Tensor]: Terms for the loss dict of ``loss()``.
    """
    layers = {
        path: layer
        for path, layer in moe_layers(root).items()
        if layer.last_routing is not None and not any(
            path.startswith(prefix) for prefix in owned_elsewhere)
    }
    terms: Dict[str, Tensor] = {}
    for path, layer in layers.items():
        suffix = f'.{path}' if name_layers or len(layers) > 1 else ''
        for name, value in layer.balance_loss().items():
            terms[name + suffix] = value
        for name, value in routing_health(layer.last_routing).items():
            terms[f'moe_{name}{suffix}'] = value
    return terms
