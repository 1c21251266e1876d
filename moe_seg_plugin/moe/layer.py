"""PatchConvMoE: a convolution replaced by patch-routed convolutional experts."""
import functools
import logging
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from .dispatch import (CutWindows, MixIntoMap, expert_capacity,
                       gather_windows, group_by_expert, mix_outputs,
                       run_experts, run_merged, run_merged_sliced,
                       run_patch_by_patch)
from .experts import (EXPERT_INITS, check_runs_on_windows, make_experts,
                      reinitialise, stage_steps)
from .geometry import AxisGeometry, ChainAxis, channels, conv_stages
from .loading import check_entries, upcycle_dense_entries
from .losses import MoELoadLoss
from .merging import (EXPERT_SCOPES, low_rank_parts, split_conv_scope,
                      tail_affine)
from .patches import PatchLayout, axis_layout
from .registry import (BALANCE_LOSSES, GATES, ConfigLike, check_keywords,
                       keywords_of)
from .routing import WEIGHTINGS, RoutingRecord, TopK, choose_top_k

_DEFAULT = object()
DEFAULT_GRID = (3, 3)
#: How the dispatch moves data (see :mod:`.dispatch`).
DISPATCHES = ('auto', 'views', 'indexed')
DEFAULT_GATE = dict(type='DoubleConvGAPGate')
MAX_CACHED_LAYOUTS = 32
#: The geometry of a 1x1 convolution (low-rank experts on the stem's map).
POINTWISE = ChainAxis((AxisGeometry(), ))
logger = logging.getLogger('moe_seg_plugin')

IntPair = Union[int, Sequence[int]]
#: The method each dtype has to cast a module to it (``layer.double()``).
CAST_METHODS = {
    torch.float64: 'double', torch.float32: 'float', torch.float16: 'half',
    torch.bfloat16: 'bfloat16'
}


def _positive_pair(value: IntPair, key: str) -> Tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if (len(pair) != 2 or not all(isinstance(v, int) for v in pair)
            or min(pair) < 1):
        raise ValueError(f'{key} must be a positive int or a pair of '
                         f'positive ints (rows, cols), got {value!r}')
    return pair


def checked_settings(init: Callable) -> Callable:
    """Wrap a layer's ``__init__`` so that an unknown keyword setting is
    refused with the allowed ones (Python's TypeError names neither); the
    wrapper keeps ``init``'s signature for ``inspect``.

    Args:
        init: The ``__init__`` to wrap.

    Returns:
        Callable: The wrapped ``__init__``.
    """
    accepted = [name for name in keywords_of(init) if name != 'self']

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs) -> None:
        check_keywords(kwargs, accepted, type(self).__name__)
        init(self, *args, **kwargs)

    return wrapper


def autocast_handles(x: Tensor, dtype: torch.dtype) -> bool:
    """Whether autocast, on for ``x``'s device, reconciles ``x``'s dtype
    with parameters of ``dtype`` (both floating, neither float64, which
    autocast leaves as it is)."""
    return (x.is_floating_point() and dtype.is_floating_point
            and torch.float64 not in (x.dtype, dtype)
            and torch.is_autocast_enabled(x.device.type))


class PatchConvMoE(nn.Module):
    """Patch-wise sparse mixture of convolutional experts.

    The layer's output is cut into a grid of patches; a gate sends each
    patch (its input window, with the halo the experts' receptive field
    needs) to its ``top_k`` experts, each expert runs only on its patches,
    and the weighted outputs are put back in place. The output has the shape
    the replaced module's would have; with one expert and ``top_k=1`` it
    equals the replaced module's output on the same weights.

    Args:
        module (nn.Module): The convolution to replace: ``nn.Conv2d``, mmcv
            ``ConvModule`` / ``DepthwiseSeparableConvModule``, or an
            ``nn.Sequential`` of those and pixel-wise layers.
        num_experts (int): Routed experts N. Default: 8.
        top_k (int): Experts per patch. Default: 2.
        weighting (str): How the chosen experts' outputs are weighted:
            'renormalized' (their probabilities renormalised to sum to 1;
            with ``top_k=1`` the weight is always 1 and the gate learns from
            the balancing losses alone), 'gate_prob' (their softmax
            probabilities over all experts, as Switch Transformer: the task
            loss reaches the gate at top-1 too) or 'straight_through'
            (renormalised forward, the gradient of 'gate_prob' backward).
            Default: 'renormalized'.
        grid (int | tuple[int, int], optional): Patches per (rows, cols) of
            the output. Default: (3, 3) unless ``patch_size`` is given.
        patch_size (int | tuple[int, int], optional): Patch size in output
            pixels instead of a grid. Give exactly one of the two.
        gate (dict): Gate config, ``type`` one of GAPLinearGate,
            ConvGAPGate, DoubleConvGAPGate. Default: DoubleConvGAPGate.
        noisy_gating (bool): Noisy top-k in training. Default: False.
        noise_std (float): Standard deviation of that noise. Default: 1.0.
        balance_loss (dict | list[dict], optional): Balancing loss(es).
        num_shared_experts (int): Experts applied to every patch and added
            to its mixture with weight 1. Default: 0.
        expert_init (str): 'random' (fresh independent weights) or 'copy'
            (the module's weights plus noise: upcycling). Default: 'random'.
        init_noise (float): Relative noise for 'copy'. Default: 0.01.
        capacity_factor (float, optional): Capacity mode: every expert runs
            on ``ceil(capacity_factor * T * k / N)`` windows for T patches,
            so shapes depend on the input size alone (no host sync;
            compiles and exports with static shapes). Choices over an
            expert's capacity are dropped (first choices kept first, then
            patch order) and their share is in the routing statistics
            (``dropped_share``); spare capacity runs on other patches'
            windows whose outputs are not used (in training they count in
            the experts' batch-norm statistics). None (default): every
            choice runs, the per-expert counts read to the host once per
            forward pass (one graph break under ``torch.compile``).
        dispatch (str): How windows are cut out and outputs mixed back
            (:mod:`.dispatch`): 'views' (through views of the maps, one
            operation per window and slot: the fastest on a CPU), 'indexed'
            (a few index operations whatever the batch and grid: for
            accelerators, capacity mode, tracing and export) or 'auto'
            (views in default mode on a CPU, indexed otherwise). Capacity
            mode, tracing (FLOP counting, ONNX export) and
            ``torch.compile`` always use 'indexed'. Both give the same
            outputs and gradients up to float rounding. Default: 'auto'.
        expert_scope (str): What an expert is: 'module' (a copy of the
            whole replaced module) or 'conv' (a copy of its convolution
            only; the norm, activation and other pixel-wise layers after it
            run once, shared, on the mixed map: :mod:`.merging`). Modules
            with several convolutions support 'module' only. Default:
            'module'.
        merge_experts (bool): With ``expert_scope='conv'``, mix each
            patch's k kernels into one and convolve its window once (the
            same outputs and gradients up to float rounding, at the cost of
            one convolution; in training too, where it measured 1.2-1.6x
            the dense layer's step against 1.8-2.3x unmerged). An attribute
            that may be changed on the built layer. Default: True.
        expert_rank (int, optional): Low-rank experts (with
            ``expert_scope='conv'``): one shared convolution of the replaced
            one's geometry to ``expert_rank`` channels runs on the whole
            map, and the experts are 1x1 convolutions from those to the
            output channels (merged per patch like any conv-scope
            experts). Parameters: r * C_in * kh * kw + N * C_out * r.
            Default: None (full experts).

    Loading a state dict that holds the *dense* module's weights under this
    layer's prefix (a stock checkpoint) upcycles them: with
    ``expert_init='copy'`` every expert (and shared expert) starts from them
    plus noise (logged at INFO); with 'random' they are dropped (a WARNING
    naming both choices). Both go to the 'moe_seg_plugin' logger.
    """

    @checked_settings
    def __init__(self,
                 module: nn.Module,
                 num_experts: int = 8,
                 top_k: int = 2,
                 weighting: str = 'renormalized',
                 grid: Optional[IntPair] = _DEFAULT,
                 patch_size: Optional[IntPair] = None,
                 gate: ConfigLike = DEFAULT_GATE,
                 noisy_gating: bool = False,
                 noise_std: float = 1.0,
                 balance_loss: Union[None, ConfigLike,
                                     List[ConfigLike]] = None,
                 num_shared_experts: int = 0,
                 expert_init: str = 'random',
                 init_noise: float = 0.01,
                 capacity_factor: Optional[float] = None,
                 dispatch: str = 'auto',
                 expert_scope: str = 'module',
                 merge_experts: bool = True,
                 expert_rank: Optional[int] = None) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise ValueError(f'module must be an nn.Module (the convolution '
                             f'to replace), got {type(module).__name__}')
        stages = conv_stages(module)
        check_runs_on_windows(module)
        if not isinstance(num_experts, int) or num_experts < 1:
            raise ValueError(
                f'num_experts must be an int >= 1, got {num_experts!r}')
        if not isinstance(top_k, int) or not 1 <= top_k <= num_experts:
            raise ValueError(f'top_k must be an int from 1 to num_experts '
                             f'({num_experts}), got {top_k!r}')
        if weighting not in WEIGHTINGS:
            raise ValueError(f'weighting must be one of {WEIGHTINGS}, got '
                             f'{weighting!r}')
        if grid is _DEFAULT:
            grid = DEFAULT_GRID if patch_size is None else None
        if (grid is None) == (patch_size is None):
            raise ValueError(
                'grid and patch_size: give exactly one of them (grid=(rows, '
                f'cols) patches, or patch_size in pixels); got grid={grid!r}, '
                f'patch_size={patch_size!r}')
        self.grid = None if grid is None else _positive_pair(grid, 'grid')
        self.patch_size = (None if patch_size is None else _positive_pair(
            patch_size, 'patch_size'))
        if not isinstance(num_shared_experts, int) or num_shared_experts < 0:
            raise ValueError(f'num_shared_experts must be an int >= 0, got '
                             f'{num_shared_experts!r}')
        if expert_init not in EXPERT_INITS:
            raise ValueError(f'expert_init must be one of {EXPERT_INITS}, '
                             f'got {expert_init!r}')
        if init_noise < 0:
            raise ValueError(f'init_noise must be >= 0, got {init_noise!r}')
        if capacity_factor is not None and not (
                isinstance(capacity_factor, (int, float))
                and capacity_factor > 0):
            raise ValueError(f'capacity_factor must be a number > 0 (or '
                             f'None), got {capacity_factor!r}')
        if dispatch not in DISPATCHES:
            raise ValueError(f'dispatch must be one of {DISPATCHES}, got '
                             f'{dispatch!r}')
        if expert_scope not in EXPERT_SCOPES:
            raise ValueError(f'expert_scope must be one of {EXPERT_SCOPES}, '
                             f'got {expert_scope!r}')
        if not isinstance(merge_experts, bool):
            raise ValueError(f'merge_experts must be True or False, got '
                             f'{merge_experts!r}')
        if expert_rank is not None and (
                not isinstance(expert_rank, int)
                or isinstance(expert_rank, bool) or expert_rank < 1):
            raise ValueError(f'expert_rank must be an int >= 1 (or None), '
                             f'got {expert_rank!r}')
        if expert_rank is not None and expert_scope != 'conv':
            raise ValueError(
                "expert_rank: low-rank experts replace the convolution "
                "only; set expert_scope='conv' with it")
        if expert_rank is not None and expert_init == 'copy':
            raise ValueError(
                "expert_rank: expert_init='copy' copies the dense weights, "
                "which low-rank experts cannot hold; use "
                "expert_init='random'")
        if noisy_gating and not noise_std > 0:
            raise ValueError(
                f'noise_std must be > 0 with noisy_gating, got {noise_std!r}')

        self.num_experts = num_experts
        self.top_k = top_k
        self.weighting = weighting
        self.expert_init = expert_init
        self.init_noise = float(init_noise)
        self.capacity_factor = (None if capacity_factor is None else
                                float(capacity_factor))
        self.dispatch = dispatch
        self.expert_scope = expert_scope
        self.merge_experts = merge_experts
        # Experts copy the module, or its convolution (conv scope: then the
        # module without it is the tail, applied once to the mixed map).
        source, tail = module, None
        #: Conv scope: the convolution's path in the module; else None.
        self.conv_path: Optional[str] = None
        self.expert_rank = expert_rank
        #: Low-rank experts: the shared convolution to ``expert_rank``
        #: channels before them; else None.
        self.stem: Optional[nn.Module] = None
        if expert_scope == 'conv':
            self.conv_path, source, tail = split_conv_scope(module)
        if expert_rank is not None:
            self.stem, source = low_rank_parts(source, expert_rank)
        #: The class of the module the layer replaces, for messages.
        self.replaced_type = type(module).__name__
        self._dense_keys = tuple(module.state_dict().keys())
        self._dense_params = frozenset(
            name for name, _ in module.named_parameters())
        self.noisy_gating = bool(noisy_gating)
        self.noise_std = float(noise_std)
        self.in_channels, self.out_channels = channels(stages)
        self.rows = ChainAxis(tuple(s.rows for s in stages))
        self.cols = ChainAxis(tuple(s.cols for s in stages))
        #: How an expert runs on windows (the same in every copy).
        self.expert_steps = stage_steps(source)

        self.gate = GATES.build(
            gate, 'gate', in_channels=self.in_channels,
            num_experts=num_experts)
        self.experts = make_experts(source, num_experts, expert_init,
                                    init_noise)
        self.shared_experts = make_experts(source, num_shared_experts,
                                           expert_init, init_noise)
        self.balance_losses = nn.ModuleList(
            self._build_losses(balance_loss))
        #: Conv scope: the replaced module's layers after its convolution.
        self.tail: Optional[nn.Module] = tail

        self._forced_expert: Optional[int] = None
        #: The routing of the last forward pass.
        self.last_routing: Optional[RoutingRecord] = None
        self._layouts: Dict[Tuple[int, int], PatchLayout] = {}
        self._clip_logged = False

    @property
    def forced_expert(self) -> Optional[int]:
        """Send every patch to this expert with weight 1 (None: gated)."""
        return self._forced_expert

    @forced_expert.setter
    def forced_expert(self, value: Optional[int]) -> None:
        if value is not None and (not isinstance(value, int)
                                  or isinstance(value, bool)
                                  or not 0 <= value < self.num_experts):
            raise ValueError(
                f'forced_expert must be None (gated) or an int from 0 to '
                f'{self.num_experts - 1}, got {value!r}')
        self._forced_expert = value

    def init_weights(self) -> None:
        """Give the gate its own initialisation again.

        MMEngine initialises a parent (e.g. a decode head whose ``init_cfg``
        overrides its classifier with Normal(std=0.01)) before its
        children; a gate placed there must not keep that classifier init.
        The experts keep what the parent gave them (they replace its
        module)."""
        reinitialise(self.gate)

    def _build_losses(self, cfg) -> List[nn.Module]:
        if cfg is None:
            return []
        cfgs = list(cfg) if isinstance(cfg, (list, tuple)) else [cfg]
        losses = [BALANCE_LOSSES.build(c, 'balance_loss') for c in cfgs]
        for loss in losses:
            if isinstance(loss, MoELoadLoss) and not self.noisy_gating:
                raise ValueError(
                    'balance_loss: MoELoadLoss estimates the load of noisy '
                    'top-k routing; set noisy_gating=True or use another '
                    'loss (MoESwitchLoss, MoEImportanceLoss, ...)')
        return losses

    def layout(self, height: int, width: int,
               pointwise: bool = False) -> PatchLayout:
        """The patch layout for an input of ``height`` x ``width`` pixels
        (with ``pointwise``, for 1x1 experts on a map of that size: each
        window its patch); the last ``MAX_CACHED_LAYOUTS`` are kept."""
        key = (height, width, pointwise)
        layout = self._layouts.pop(key, None)
        if layout is None:
            grid = self.grid or (None, None)
            size = self.patch_size or (None, None)
            rows, cols = ((POINTWISE, POINTWISE) if pointwise else
                          (self.rows, self.cols))
            layout = PatchLayout(
                axis_layout(rows, height, grid[0], size[0], 'height'),
                axis_layout(cols, width, grid[1], size[1], 'width'))
            if len(self._layouts) >= MAX_CACHED_LAYOUTS:
                self._layouts.pop(next(iter(self._layouts)))
            if not pointwise:  # (the same patches as the layer's layout)
                self._warn_clipped(layout, height, width)
        self._layouts[key] = layout  # most recently used last
        return layout

    def expert_layout(self, layout: PatchLayout) -> PatchLayout:
        """The layout the experts run in: ``layout`` itself, or for
        low-rank experts the same patches on the stem's output, each
        window its patch (1x1 experts)."""
        if self.stem is None:
            return layout
        return self.layout(*layout.out_size, pointwise=True)

    def _warn_clipped(self, layout: PatchLayout, height: int,
                      width: int) -> None:
        """Say, once per layer, that the grid or patch size is larger than
        the output for this input (the layout is clipped to the output).

        Args:
            layout (PatchLayout): The layout of this input.
            height (int): The input's height.
            width (int): The input's width.
        """
        if self._clip_logged:
            return
        where = (f'{height}x{width} input; this input uses a {layout.grid} '
                 'grid')
        if layout.clipped(self.grid):
            logger.warning(
                f'PatchConvMoE: grid {self.grid} is larger than the output '
                f'{layout.out_size} of the replaced layer for a {where} '
                '(one patch per output pixel where the grid does not fit; '
                'said once per layer)')
        elif layout.oversized(self.patch_size):
            logger.warning(
                f'PatchConvMoE: patch_size {self.patch_size} is larger than '
                f'the output {layout.out_size} of the replaced layer for a '
                f'{where} (one patch of the whole output where the '
                'patch_size does not fit; said once per layer)')
        else:
            return
        self._clip_logged = True

    def route(self, logits: Tensor) -> TopK:
        """Choose experts for gate logits (T, N) with the layer's top-k,
        weighting, forced expert and (in training) noise.

        Args:
            logits (Tensor): Gate logits (T, N).

        Returns:
            TopK: The choice (experts and weights (T, k)).
        """
        noisy = self.noisy_gating and self.training
        return choose_top_k(logits, self.top_k,
                            self.noise_std if noisy else None,
                            self._forced_expert, self.weighting)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the mixture to ``x`` (B, C, H, W).

        Gate, top-k, then the dispatch's steps (:mod:`.dispatch`): group
        the slots by expert (then ``last_routing`` is built, complete),
        cut out their windows, each expert once on its windows, mix the
        outputs into the map; shared experts add their output on the whole
        map. Windows are cut and outputs mixed through views of the maps
        or with index operations, as ``dispatch`` says.

        Returns:
            Tensor: What the replaced module would return, in shape.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'PatchConvMoE expects input (B, {self.in_channels}, H, W), '
                f'got {tuple(x.shape)}')
        if x.shape[0] == 0:
            raise ValueError('PatchConvMoE got an empty batch (0 images); '
                             'it needs at least one image to route')
        param = next(self.parameters(), None)
        if param is not None and x.dtype != param.dtype:
            self._check_dtype(x, param.dtype)
        batch = x.shape[0]
        layout = self.layout(x.shape[2], x.shape[3])
        # The output keeps the input's memory format, as torch's
        # convolutions do.
        keep_channels_last = not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last)
        logits = self.gate(x, layout.cell_means)
        if tuple(logits.shape) != (batch * layout.cells, self.num_experts):
            raise ValueError(
                f'gate {type(self.gate).__name__} returned logits of shape '
                f'{tuple(logits.shape)}; expected one row per patch, '
                f'({batch * layout.cells}, {self.num_experts}) for {batch} '
                f'image(s) of {layout.grid[0]}x{layout.grid[1]} patches and '
                f'{self.num_experts} experts (pool the map with the pool it '
                'is given)')
        choice = self.route(logits)
        capacity = None if self.capacity_factor is None else \
            expert_capacity(self.capacity_factor, logits.shape[0],
                            self.top_k, self.num_experts)
        # Views in eager default mode on a CPU (or where asked for); index
        # operations where the op count must not grow with the patches.
        tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()
        views = (capacity is None and self.dispatch != 'indexed'
                 and (self.dispatch == 'views' or x.device.type == 'cpu')
                 and not tracing)
        merged = self.expert_scope == 'conv' and self.merge_experts
        # Merged kernels read the choice itself: off the views path and
        # without capacity, nothing to group (no host sync; the graph an
        # export traces has no data-dependent shapes).
        groups = (None if merged and not views and capacity is None else
                  group_by_expert(choice.experts, choice.weights,
                                  self.num_experts, self._forced_expert,
                                  capacity, on_host=views))
        # The record's fields: the choice's, the layout's and the grouping's.
        self.last_routing = RoutingRecord(
            **vars(choice), **vars(layout.placement(batch)),
            kept=None if groups is None else groups.kept)
        if self.stem is not None:  # low-rank: the experts' input
            x, layout = self.stem(x), self.expert_layout(layout)
        # Merged patch by patch, a batch norm and ReLU tail folds into the
        # kernels (not under shared experts, which add before the tail).
        tail = (tail_affine(self.tail)
                if merged and views and not torch.is_grad_enabled()
                and not self.shared_experts else None)
        if views and not (self.training or torch.is_grad_enabled()):
            out = run_patch_by_patch(self.experts, self.expert_steps, x,
                                     layout, groups, keep_channels_last,
                                     merged, tail)
        elif merged and tracing:  # fixed slices and concatenation
            out = run_merged_sliced(
                self.experts, x, layout, choice.experts,
                choice.weights if groups is None else groups.weights)
        elif merged:
            out = run_merged(
                self.experts, x, layout, choice.experts,
                choice.weights if groups is None else groups.weights, views,
                keep_channels_last)
        elif views:
            # A final ReLU of the experts is the mix's to apply (saves each
            # output's gradient buffer, see MixIntoMap).
            relu = self.expert_steps[-1].ends_in_relu
            windows = CutWindows.apply(x, layout, groups.runs)
            outputs = run_experts(self.experts, self.expert_steps, x,
                                  layout, groups, windows, relu=not relu)
            out = MixIntoMap.apply(layout, groups.rows, groups.weights,
                                   keep_channels_last, relu, *outputs)
        else:
            windows = gather_windows(x, layout, groups.patches).split(
                groups.counts)
            outputs = run_experts(self.experts, self.expert_steps, x,
                                  layout, groups, windows)
            out = mix_outputs(torch.cat(outputs), layout, groups.slots,
                              groups.weights, batch, keep_channels_last)
        # A shared expert takes every patch with weight 1: that is the
        # module on the whole map.
        for expert in self.shared_experts:
            out = out + expert(x)
        # Conv scope: the module's layers after its convolution, once.
        return (out if self.tail is None or tail is not None else
                self.tail(out))

    def _check_dtype(self, x: Tensor, dtype: torch.dtype) -> None:
        """Refuse an input whose dtype the layer's parameters (of another
        ``dtype``) cannot take (it would fail deep inside, in a gather or a
        convolution).

        A dtype comparison on tensor metadata: no host sync, and tracing
        (torch.compile, ONNX export) sees a constant. Under autocast a
        lower-precision input or layer is autocast's to reconcile.

        Args:
            x (Tensor): The layer's input.
            dtype (torch.dtype): The layer's parameters' dtype.

        Raises:
            TypeError: Naming the layer, both dtypes and the casts.
        """
        if autocast_handles(x, dtype):
            return
        method = CAST_METHODS.get(x.dtype)
        layer_cast = (f", or the layer to the input's (layer.{method}())"
                      if method else '')
        replaced = getattr(self, 'replaced_type', 'a module')  # old pickles
        raise TypeError(
            f'PatchConvMoE (replacing {replaced}): input dtype '
            f"{x.dtype} does not match the layer's parameter dtype "
            f"{dtype}; cast the input to the layer's "
            f'(x.to({dtype})){layer_cast}')

    def balance_loss(self) -> Dict[str, Tensor]:
        """The balancing losses on the last forward pass's routing.

        Returns:
            dict[str, Tensor]: ``{loss_name: weighted loss}``; losses sharing
            a name are summed. Empty if no loss is configured.
        """
        if not len(self.balance_losses):
            return {}
        if self.last_routing is None:
            raise RuntimeError('PatchConvMoE.balance_loss() needs a forward '
                               'pass first')
        out: Dict[str, Tensor] = {}
        for loss in self.balance_losses:
            value = loss(self.last_routing)
            out[loss.loss_name] = out.get(loss.loss_name, 0) + value
        return out

    def __getstate__(self) -> dict:
        # Copies (deepcopy, pickle) leave out the last routing (it may hold
        # an autograd graph) and the per-size layout cache (index tensors).
        state = self.__dict__.copy()
        state['last_routing'] = None
        state['_layouts'] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        # A layer pickled before the dispatch setting existed moves data
        # as 'auto' chooses.
        state.setdefault('dispatch', 'auto')
        for key, value in (('expert_scope', 'module'),
                           ('merge_experts', True), ('conv_path', None),
                           ('tail', None), ('expert_rank', None),
                           ('stem', None)):
            state.setdefault(key, value)
        super().__setstate__(state)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        # Refuse entries that do not fit, then turn a dense module's entries
        # into the experts' (see .loading).
        check_entries(self, state_dict, prefix)
        upcycle_dense_entries(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self) -> str:
        split = (f'grid={self.grid}'
                 if self.grid else f'patch_size={self.patch_size}')
        capacity = ('' if self.capacity_factor is None else
                    f', capacity_factor={self.capacity_factor}')
        if self.dispatch != 'auto':
            capacity += f', dispatch={self.dispatch!r}'
        if self.expert_scope != 'module':
            capacity += (f', expert_scope={self.expert_scope!r}' +
                         ('' if self.merge_experts else
                          ', merge_experts=False'))
        if self.expert_rank is not None:
            capacity += f', expert_rank={self.expert_rank}'
        return (f'num_experts={self.num_experts}, top_k={self.top_k}, '
                f'{split}, num_shared_experts={len(self.shared_experts)}'
                f'{capacity}')
