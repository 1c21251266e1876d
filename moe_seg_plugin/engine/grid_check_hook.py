"""The MoE grid check for runs started by MMSeg's own tools."""
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ..models.grid_check import check_model_grids
from ..models.injection import segmentor_of
from .errors import SetupError


@HOOKS.register_module()
class GridCheckHook(Hook):
    """Refuses, before the first step, a MoE layer whose grid or patch size
    does not fit its feature map at the crop size
    (:func:`~moe_seg_plugin.models.grid_check.check_model_grids`).

    The plugin's tools check as soon as they build the model; this hook
    gives MMSeg's own ``tools/train.py`` and ``tools/test.py`` the same
    check at ``before_run``, the first point after the model is built. The
    MoE configs list it (``configs/_base_/moe/patch_moe_paper.py``); a
    model is checked once, so both together cost one check.
    """
    # First of the before_run calls: a refused model stops the run before
    # any other hook acts on it.
    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        """Check the runner's segmentor (wrappers unwrapped).

        Args:
            runner (Runner): The runner.

        Raises:
            SetupError: A grid or patch size does not fit (the message of
                :func:`check_model_grids`).
        """
        try:
            check_model_grids(segmentor_of(runner.model))
        except ValueError as exc:
            raise SetupError(str(exc)) from exc
