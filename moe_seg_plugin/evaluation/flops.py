"""FLOPs and parameters of a segmentor, with PatchConvMoE layers counted as
they run.

Counting is MMEngine's (``mmengine.analysis.FlopAnalyzer``: a jit trace of
one tensor-mode forward pass of a batch-1 input; one multiply-add counts as
one FLOP, as in MMSeg's get_flops; element-wise ops are not counted). The
trace records the ops that ran for that input, so a MoE layer's traced
("actual") figure is what runs: the gate, each chosen expert on the windows
of its patches (the input their outputs read, halo included), and the shared
experts. The dispatch's data movement (gathering
windows, putting patches back) costs no FLOPs.

Each MoE layer is also analysed piece by piece, outside the dispatch: the
replaced (dense) conv on the whole input, one expert on all patch windows
(the halo's overhead), and the "all experts" figure: every expert (and
shared expert) on every patch, each as the dense conv, plus the gate.
"""
import contextlib
import copy
from dataclasses import asdict, dataclass, field
from typing import (Dict, Iterator, List, Mapping, Optional, Sequence,
                    Tuple)

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.config import Config
from torch import Tensor, nn

from ..models.injection import moe_layers
from ..moe import PatchConvMoE
from ..moe.dispatch import gather_windows
from ..moe.experts import run_expert
from ..moe.patches import PatchLayout, all_patches

#: Ops of the MoE dispatch that select or move data, or index them: no
#: FLOPs. (Its element-wise weighting and sums, embedding_bag's included,
#: are never counted by MMEngine.)
DATA_MOVEMENT_OPS = ('aten::index_select', 'aten::index_add_',
                     'aten::argsort', 'aten::sort', 'aten::bincount',
                     'aten::repeat', 'aten::pad', 'aten::topk',
                     'aten::index', 'aten::scatter_', 'aten::scatter_add_',
                     'aten::scatter', 'aten::embedding_bag',
                     'aten::empty_like', 'aten::view_as', 'aten::one_hot',
                     'aten::cumsum', 'aten::where')
MAX_UNPOOLS = (nn.MaxUnpool1d, nn.MaxUnpool2d, nn.MaxUnpool3d)
#: Submodules that run in training only (MMSeg's auxiliary heads).
TRAINING_ONLY = ('auxiliary_head', )


@dataclass
class MoELayerFlops:
    """The cost of one PatchConvMoE layer for one input.

    Attributes:
        path (str): Dotted path of the layer in the model.
        module (str): Class of the replaced module (each expert's).
        num_experts (int): Routed experts N.
        top_k (int): Experts per patch.
        num_shared_experts (int): Experts run on every patch.
        grid (tuple[int, int]): Patches (rows, cols) for this input.
        input_shape (tuple[int, ...]): The layer's input (B, C, H, W).
        window_shape (tuple[int, ...]): All patch windows (T, C, Lh, Lw).
        actual (int): Traced FLOPs: what ran for this input.
        gate (int): Traced FLOPs of the gate.
        routed (int): Traced FLOPs of the routed experts.
        shared (int): Traced FLOPs of the shared experts.
        dense (int): The replaced conv on the whole input (the stock
            model's cost of this layer).
        expert_windows (int): One expert on the windows of all patches, run
            as the dispatch runs an expert that has some of the patches
            (tight windows where the expert allows: patch outputs only;
            otherwise windows with halo outputs).
        params (int): Parameters of the layer.
        dense_params (int): Parameters of the replaced conv.
        stem (int): Low-rank experts' shared convolution on the whole
            input (0 without one; part of ``dense`` and ``actual``).
    """
    path: str
    module: str
    num_experts: int
    top_k: int
    num_shared_experts: int
    grid: Tuple[int, int]
    input_shape: Tuple[int, ...]
    window_shape: Tuple[int, ...]
    actual: int
    gate: int
    routed: int
    shared: int
    dense: int
    expert_windows: int
    params: int
    dense_params: int
    stem: int = 0

    @property
    def all_experts(self) -> int:
        """Every routed expert on every patch window (as the dispatch runs
        them), every shared expert on the map, plus the gate."""
        return (self.gate + self.stem +
                self.num_experts * self.expert_windows +
                self.num_shared_experts * (self.dense - self.stem))

    def to_dict(self) -> dict:
        out = asdict(self)
        out['all_experts'] = self.all_experts
        return out


@dataclass
class ModelComplexity:
    """FLOPs and parameters of a model for one input shape.

    Attributes:
        shape (tuple[int, int]): Input height and width (batch 1).
        flops (int): Traced FLOPs of the tensor-mode forward.
        params (int): Parameters used at inference (training-only
            auxiliary heads left out).
        params_total (int): Every parameter of the model.
        layers (dict[str, MoELayerFlops]): The MoE layers by path.
        uncounted_ops (dict[str, int]): Ops the analyzer has no FLOP rule
            for (mostly element-wise), with how often they ran.
        top_modules (dict[str, int]): Traced FLOPs per top-level module.
    """
    shape: Tuple[int, int]
    flops: int
    params: int
    params_total: int
    layers: Dict[str, MoELayerFlops] = field(default_factory=dict)
    uncounted_ops: Dict[str, int] = field(default_factory=dict)
    top_modules: Dict[str, int] = field(default_factory=dict)

    @property
    def all_experts_flops(self) -> int:
        """The model's FLOPs with every expert run on every patch."""
        return self.flops + sum(layer.all_experts - layer.actual
                                for layer in self.layers.values())

    def to_dict(self) -> dict:
        return dict(
            shape=list(self.shape), flops=self.flops,
            all_experts_flops=self.all_experts_flops, params=self.params,
            params_total=self.params_total,
            top_modules=dict(self.top_modules),
            moe_layers=[layer.to_dict() for layer in self.layers.values()],
            uncounted_ops=dict(self.uncounted_ops))


def count_flops(module: nn.Module, inputs: Tuple) -> Tuple[int, FlopAnalyzer]:
    """Traced FLOPs of ``module(*inputs)`` (MMEngine's FlopAnalyzer, quiet,
    the MoE dispatch's data movement marked free).

    Returns:
        tuple: Total FLOPs and the analyzer (for per-module figures).
    """
    analyzer = FlopAnalyzer(module, inputs)
    analyzer.set_op_handle(**{op: None for op in DATA_MOVEMENT_OPS})
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    with static_sizes(module):
        total = analyzer.total()
    return total, analyzer


@contextlib.contextmanager
def static_sizes(model: nn.Module) -> Iterator[None]:
    """Let the jit tracer run modules that need sizes as Python ints.

    While tracing, ``x.shape`` gives tensors. PatchConvMoE computes its
    patch layout in Python from the input size, and torch's max-unpooling
    rejects an ``output_size`` of tensors (ENet); here both get ints (the
    trace is of one input size anyway). Everything is restored on exit.
    """
    patched = []
    for module in model.modules():
        if isinstance(module, PatchConvMoE):
            module.layout = _int_args(module.layout)
            patched.append((module, 'layout'))
        elif isinstance(module, MAX_UNPOOLS):
            module.forward = _int_output_size(module.forward)
            patched.append((module, 'forward'))
    try:
        yield
    finally:
        for module, name in patched:
            delattr(module, name)


def _int_args(method):

    def with_ints(*sizes, **options):
        return method(*(int(size) for size in sizes), **options)

    return with_ints


def _int_output_size(forward):

    def with_ints(x, indices, output_size=None):
        if output_size is not None:
            output_size = [int(size) for size in output_size]
        return forward(x, indices, output_size)

    return with_ints


def _param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _layer_inputs(model: nn.Module, inputs: Tuple) -> Dict[str, Tensor]:
    """The input of every MoE layer in one forward pass of ``model``."""
    seen: Dict[str, Tensor] = {}
    handles = []
    for path, layer in moe_layers(model).items():

        def keep(_, args, path=path):
            seen[path] = args[0].detach()

        handles.append(layer.register_forward_pre_hook(keep))
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return seen


class _ExpertOnWindows(nn.Module):
    """One expert on stacked patch windows, run the way the dispatch runs
    it (convolutions without padding, masks between stages)."""

    def __init__(self, layer: PatchConvMoE, layout: PatchLayout) -> None:
        super().__init__()
        self.expert = layer.experts[0]
        self.steps = layer.expert_steps
        self.patch_layout = layout

    def forward(self, windows: Tensor) -> Tensor:
        layout, count = self.patch_layout, windows.shape[0]
        cells = all_patches(layout, 1, windows.device).repeat(
            count // layout.cells)
        return run_expert(self.expert, self.steps, windows, layout, cells)


def analyze_moe_layer(layer: PatchConvMoE,
                      x: Tensor,
                      path: str = '',
                      traced: Optional[Mapping[str, int]] = None
                      ) -> MoELayerFlops:
    """Analyse one MoE layer on its input ``x``.

    Args:
        layer (PatchConvMoE): The layer (eval mode).
        x (Tensor): Its input (B, C, H, W).
        path (str): Its path in ``traced``'s model ('' for the layer).
        traced (dict[str, int], optional): Traced FLOPs by module path
            (``FlopAnalyzer.by_module()``) of a model holding the layer at
            ``path``; if not given, the layer alone is traced on ``x``.

    Returns:
        MoELayerFlops: Traced figures (actual, gate, routed, shared) and the
        pieces analysed on their own (dense conv, one expert on all
        windows).
    """
    if traced is None:
        traced = count_flops(layer, (x, ))[1].by_module()
        path = ''

    def traced_at(name: str) -> int:
        return traced.get('.'.join(p for p in (path, name) if p), 0)

    layout = layer.layout(x.shape[2], x.shape[3])
    expert = layer.experts[0]  # every expert is a copy of one module
    # Low-rank experts run on the stem's output; the dense path is both.
    dense = expert if layer.stem is None else nn.Sequential(layer.stem,
                                                            expert)
    inputs, expert_layout = x, layer.expert_layout(layout)
    with torch.no_grad():
        if layer.stem is not None:
            inputs = layer.stem(x)
        windows = gather_windows(
            inputs, expert_layout,
            all_patches(expert_layout, x.shape[0], x.device))
    return MoELayerFlops(
        path=path,
        module=type(expert).__name__,
        num_experts=layer.num_experts,
        top_k=layer.top_k,
        num_shared_experts=len(layer.shared_experts),
        grid=layout.grid,
        input_shape=tuple(x.shape),
        window_shape=tuple(windows.shape),
        actual=traced_at(''),
        gate=traced_at('gate'),
        # The dispatch runs the experts' convolutions itself (without
        # padding), so the trace puts them in the layer's own scope: what
        # is neither gate nor shared experts.
        routed=traced_at('') - traced_at('gate') - traced_at(
            'shared_experts'),
        shared=traced_at('shared_experts'),
        dense=count_flops(dense, (x, ))[0],
        expert_windows=count_flops(_ExpertOnWindows(layer, expert_layout),
                                   (windows, ))[0],
        params=_param_count(layer),
        dense_params=_param_count(dense),
        stem=0 if layer.stem is None else count_flops(layer.stem, (x, ))[0])


def inference_params(model: nn.Module) -> Tuple[int, int]:
    """Parameters used at inference and in all (MMEngine's
    parameter_count; MMSeg's auxiliary heads only train)."""
    counts = parameter_count(model)
    training_only = sum(counts.get(name, 0) for name in TRAINING_ONLY)
    return counts[''] - training_only, counts['']


def analyze_model(model: nn.Module,
                  shape: Sequence[int],
                  in_channels: int = 3) -> ModelComplexity:
    """FLOPs and parameters of a segmentor's tensor-mode forward.

    Args:
        model (nn.Module): The segmentor (put in eval mode here).
        shape (tuple[int, int]): Input height and width; batch 1.
        in_channels (int): Image channels. Default: 3.

    Returns:
        ModelComplexity: Traced FLOPs, parameters and every MoE layer's
        breakdown.
    """
    model.eval()
    device = next(model.parameters()).device
    height, width = shape
    inputs = (torch.randn(1, in_channels, height, width, device=device), )
    layer_inputs = _layer_inputs(model, inputs) if moe_layers(model) else {}
    total, analyzer = count_flops(model, inputs)
    by_module = analyzer.by_module()
    layers = {
        path: analyze_moe_layer(layer, layer_inputs[path], path, by_module)
        for path, layer in moe_layers(model).items() if path in layer_inputs
    }
    params, params_total = inference_params(model)
    top = {
        name: by_module[name]
        for name, _ in model.named_children() if by_module.get(name)
    }
    return ModelComplexity(
        shape=(height, width), flops=total, params=params,
        params_total=params_total, layers=layers,
        uncounted_ops=dict(analyzer.unsupported_ops()), top_modules=top)


def increase_pct(new: float, old: float) -> float:
    """Relative increase of ``new`` over ``old`` in %."""
    return 100.0 * (new - old) / old


def compare_complexity(moe: ModelComplexity,
                       stock: ModelComplexity) -> Dict[str, float]:
    """Increase of a MoE model over its stock model, in %.

    Returns:
        dict: ``params_pct``, ``flops_pct`` (traced) and
        ``all_experts_flops_pct``.
    """
    return dict(
        params_pct=increase_pct(moe.params, stock.params),
        flops_pct=increase_pct(moe.flops, stock.flops),
        all_experts_flops_pct=increase_pct(moe.all_experts_flops,
                                           stock.flops))


def inference_model(cfg: Config,
                    checkpoint: Optional[str] = None,
                    device: str = 'cpu') -> nn.Module:
    """The segmentor of ``cfg`` in eval mode, as the analysis tools use it
    (MMSeg's ``init_model``; SyncBN turned into BN as in MMSeg's
    get_flops), with ``checkpoint`` loaded once it is checked to fit
    (:func:`~moe_seg_plugin.engine.checkpoint_fit.load_fitting_checkpoint`).

    Raises:
        SetupError: If the checkpoint does not fit the model.
    """
    from mmengine.model import revert_sync_batchnorm
    from mmseg.apis import init_model

    from ..engine.checkpoint_fit import load_fitting_checkpoint
    model = init_model(copy.deepcopy(cfg), device=device)
    if checkpoint is not None:
        load_fitting_checkpoint(model, checkpoint)
    return revert_sync_batchnorm(model).eval()


def layer_shares(moe: ModelComplexity,
                 stock: ModelComplexity) -> List[Dict[str, float]]:
    """Per MoE layer: the replaced conv's share of the stock model's FLOPs
    and the layer's cost relative to that conv (actual / dense)."""
    return [
        dict(path=layer.path,
             dense_share_pct=100.0 * layer.dense / stock.flops,
             actual_over_dense=layer.actual / layer.dense)
        for layer in moe.layers.values()
    ]


def input_hw(values: Sequence[int]) -> Tuple[int, int]:
    """``--shape`` as MMSeg's tools take it: one int (square) or H W.

    Raises:
        ValueError: For other counts or non-positive sizes.
    """
    values = list(values)
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise ValueError(f'--shape: give one size (square) or two (height '
                         f'width), all positive; got {values}')
    return values[0], values[1]
