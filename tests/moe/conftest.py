"""The two dispatches (moe/dispatch.py), run by the same tests."""
import pytest

from moe_seg_plugin.moe import PatchConvMoE, layer


@pytest.fixture(params=['views', 'indexed'])
def dispatch(request, monkeypatch):
    """Every PatchConvMoE built in the test gets ``dispatch=`` this value
    unless it says otherwise; with 'indexed' the views steps must not run
    (a test of both dispatches that ran one twice would pass for nothing).

    Returns:
        str: 'views' or 'indexed'.
    """
    init = PatchConvMoE.__init__
    ran = []

    def built(self, *args, **kwargs):
        kwargs.setdefault('dispatch', request.param)
        init(self, *args, **kwargs)

    def spy(owner, name: str) -> None:
        real = getattr(owner, name)

        def call(*args, **kwargs):
            ran.append(f'{getattr(owner, "__name__", owner)}.{name}')
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, call)

    monkeypatch.setattr(PatchConvMoE, '__init__', built)
    spy(layer, 'run_patch_by_patch')
    spy(layer.CutWindows, 'apply')
    spy(layer.MixIntoMap, 'apply')
    yield request.param
    if request.param == 'indexed':
        assert not ran, f'views steps ran: {sorted(set(ran))}'
