"""The two dispatches (moe/dispatch.py), run by the same tests."""
import pytest

from moe_seg_plugin.moe import PatchConvMoE, layer


@pytest.fixture(params=['views', 'indexed'])
def dispatch(request, monkeypatch):
    """Every PatchConvMoE built in the test gets ``dispatch=`` this value
    unless it says otherwise; with 'indexed' the views functions must not
    run (a test of both paths that ran one twice would pass for nothing).

    Returns:
        str: 'views' or 'indexed'.
    """
    init = PatchConvMoE.__init__
    ran = []

    def built(self, *args, **kwargs):
        kwargs.setdefault('dispatch', request.param)
        init(self, *args, **kwargs)

    def spy(name):
        real = getattr(layer, name)

        def call(*args, **kwargs):
            ran.append(name)
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(PatchConvMoE, '__init__', built)
    monkeypatch.setattr(layer, 'run_patch_by_patch',
                        spy('run_patch_by_patch'))
    monkeypatch.setattr(layer, 'mix_into_map', spy('mix_into_map'))
    yield request.param
    if request.param == 'indexed':
        assert not ran, f'views functions ran: {sorted(set(ran))}'
