"""Convolution-scoped experts and their merged kernels
(``PatchConvMoE(expert_scope='conv')``).

With ``expert_scope='conv'`` the experts are copies of the replaced
module's convolution alone; what follows it (a ConvModule's norm and
activation, an ``nn.Sequential``'s pixel-wise layers) is the *tail*, applied
once to the mixed map. The mix is then linear in the experts' weights: a
patch's output, the weighted sum of its k experts' convolutions of its
window, is the convolution of that window with the weighted sum of their
kernels (and biases). Merging the kernels first costs one convolution per
patch whatever k and N are.
"""
import copy
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .experts import stage_steps
from .routing import weight_matrix

EXPERT_SCOPES = ('module', 'conv')


def _refuse(module: nn.Module, why: str) -> ValueError:
    return ValueError(
        f"expert_scope='conv': {type(module).__name__} {why}; the conv "
        'scope needs one convolution followed only by pixel-wise layers '
        '(nn.Conv2d, a ConvModule, or an nn.Sequential starting with one); '
        "use expert_scope='module' (supported by every module PatchConvMoE "
        'replaces)')


def split_conv_scope(module: nn.Module) -> Tuple[str, nn.Conv2d, nn.Module]:
    """Split ``module`` into its convolution and the tail after it.

    Args:
        module (nn.Module): The replaced module (already read as a chain
            of stages by :func:`.geometry.conv_stages`).

    Returns:
        tuple: ``(path, conv, tail)``: the convolution's dotted path in
        ``module`` ('' for the module itself), the convolution, and a copy
        of ``module`` whose convolution is ``nn.Identity`` (its state dict
        is ``module``'s without the convolution's entries).

    Raises:
        ValueError: One line naming the module and the scopes it supports,
            where it has several convolutions or anything but pixel-wise
            layers after its convolution.
    """
    convs = [(path, sub) for path, sub in module.named_modules()
             if isinstance(sub, nn.Conv2d)]
    if len(convs) != 1:
        raise _refuse(module, f'has {len(convs)} convolutions')
    # (A ConvModule's order and padding are checked by conv_stages.)
    if stage_steps(module)[0].kind == 'pixelwise':
        raise _refuse(module, 'applies a pixel-wise layer before its '
                      'convolution')
    path, conv = convs[0]
    if not path:
        return path, conv, nn.Identity()
    tail = copy.deepcopy(module)
    parent, _, name = path.rpartition('.')
    setattr(tail.get_submodule(parent), name, nn.Identity())
    return path, conv, tail


def low_rank_parts(conv: nn.Conv2d, rank: int) -> Tuple[nn.Conv2d, nn.Conv2d]:
    """Low-rank experts (``expert_rank``): a shared convolution with the
    replaced one's geometry to ``rank`` channels, and the prototype of the
    experts, a 1x1 convolution from ``rank`` to the output channels.

    Args:
        conv (nn.Conv2d): The replaced convolution (``groups=1``).
        rank (int): r.

    Returns:
        tuple: ``(stem, expert)``, freshly initialised.

    Raises:
        ValueError: One line, for a grouped (e.g. depthwise) convolution.
    """
    if conv.groups != 1:
        raise ValueError(
            f'expert_rank: the replaced convolution has groups={conv.groups}'
            '; low-rank experts factor a dense convolution (groups=1): use '
            'expert_rank=None')
    where = dict(device=conv.weight.device, dtype=conv.weight.dtype)
    stem = nn.Conv2d(conv.in_channels, rank, conv.kernel_size, conv.stride,
                     conv.padding, conv.dilation, bias=False,
                     padding_mode=conv.padding_mode, **where)
    expert = nn.Conv2d(rank, conv.out_channels, 1,
                       bias=conv.bias is not None, **where)
    return stem, expert


def merge_kernels(experts: Sequence[nn.Conv2d], chosen: Tensor,
                  weights: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
    """Each patch's kernel: its chosen experts' kernels, weighted, summed.

    One (T, N) weight matrix times the N stacked kernels (one matrix
    product; a choice dropped by capacity has weight 0).

    Args:
        experts (list[nn.Conv2d]): The N expert convolutions.
        chosen (Tensor): (T, k) each patch's experts.
        weights (Tensor): (T, k) their mixing weights.

    Returns:
        tuple: The kernels (T, C_out, C_in / groups, kh, kw) and biases
        (T, C_out), or None where the convolutions have no bias.
    """
    mixing = weight_matrix(chosen, weights, len(experts))
    kernels = torch.stack([expert.weight for expert in experts])
    merged = (mixing @ kernels.flatten(1)).view(
        (-1, ) + tuple(kernels.shape[1:]))
    if experts[0].bias is None:
        return merged, None
    biases = torch.stack([expert.bias for expert in experts])
    return merged, mixing @ biases


def patch_kernel(convs: Sequence[nn.Conv2d], weights: Sequence[Tensor]
                 ) -> Tuple[Tensor, Optional[Tensor]]:
    """One patch's merged kernel and bias: its experts' convolutions'
    weighted sum (one pass over each kernel; no stacked copy of all N).

    Args:
        convs (list[nn.Conv2d]): The patch's k expert convolutions.
        weights (list[Tensor]): Their mixing weights (0-dim).

    Returns:
        tuple: The kernel (C_out, C_in / groups, kh, kw) and bias (C_out,)
        or None.
    """
    kernel = convs[0].weight * weights[0]
    bias = None if convs[0].bias is None else convs[0].bias * weights[0]
    for conv, weight in zip(convs[1:], weights[1:]):
        kernel.addcmul_(conv.weight, weight)
        if bias is not None:
            bias.addcmul_(conv.bias, weight)
    return kernel, bias


@dataclass(frozen=True)
class TailAffine:
    """A tail that is, in eval, a per-channel affine map (a batch norm with
    running statistics) and then a ReLU or not: folded into each patch's
    merged kernel, it costs no pass over the output map.

    Attributes:
        gain (Tensor, optional): (C_out,) ``gamma / sqrt(var + eps)``.
        shift (Tensor, optional): (C_out,) ``beta - mean * gain``.
        relu (bool): A ReLU follows (applied as the output is written).
    """
    gain: Optional[Tensor]
    shift: Optional[Tensor]
    relu: bool

    def fold(self, kernel: Tensor, bias: Optional[Tensor]
             ) -> Tuple[Tensor, Optional[Tensor]]:
        """The kernel and bias with the affine map folded in (the kernel
        scaled in place)."""
        if self.gain is None:
            return kernel, bias
        kernel.mul_(self.gain.view((-1, ) + (1, ) * (kernel.dim() - 1)))
        if bias is None:
            return kernel, self.shift
        return kernel, torch.addcmul(self.shift, bias, self.gain)


def tail_affine(tail: Optional[nn.Module]) -> Optional[TailAffine]:
    """``tail`` as a :class:`TailAffine` where it is one in eval (a
    ConvModule's batch norm and ReLU after its convolution), else None
    (then it runs on the output map).

    Args:
        tail (nn.Module, optional): The layer's tail (conv scope).

    Returns:
        TailAffine, optional: The folded form.
    """
    # (A ConvModule whose conv is the Identity split_conv_scope put there.)
    if (tail is None or tail.training or not hasattr(tail, 'order')
            or not isinstance(getattr(tail, 'conv', None), nn.Identity)):
        return None
    parts = [part for part in tail.order
             if (part == 'norm' and tail.with_norm)
             or (part == 'act' and tail.with_activation)]
    if parts not in (['norm', 'act'], ['norm'], ['act'], []):
        return None
    if tail.with_activation and type(tail.activate) is not nn.ReLU:
        return None
    gain = shift = None
    if tail.with_norm:
        norm = tail.norm
        if not (isinstance(norm, nn.modules.batchnorm._BatchNorm)
                and norm.running_var is not None):
            return None
        gain = torch.rsqrt(norm.running_var + norm.eps)
        if norm.weight is not None:
            gain = gain * norm.weight
        shift = -norm.running_mean * gain
        if norm.bias is not None:
            shift = shift + norm.bias
    return TailAffine(gain, shift, tail.with_activation)


def convolve_merged(conv: nn.Conv2d, windows: Tensor, kernels: Tensor,
                    biases: Optional[Tensor]) -> Tensor:
    """Convolve each window with its own kernel, as one grouped convolution
    (the windows side by side as channel groups), without padding.

    Args:
        conv (nn.Conv2d): Any expert (stride, dilation, groups).
        windows (Tensor): (T, C_in, Lh, Lw) one window per patch.
        kernels (Tensor): (T, C_out, C_in / groups, kh, kw).
        biases (Tensor, optional): (T, C_out).

    Returns:
        Tensor: (T, C_out, ph, pw) one output per patch.
    """
    count, _, height, width = windows.shape
    out = F.conv2d(windows.reshape(1, -1, height, width),
                   kernels.flatten(0, 1),
                   None if biases is None else biases.flatten(),
                   conv.stride, 0, conv.dilation, conv.groups * count)
    return out.view((count, -1) + tuple(out.shape[2:]))
