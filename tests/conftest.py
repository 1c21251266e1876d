"""Shared test fixtures: import the plugin first (as configs do)."""
import importlib
import pathlib
import sys

import pytest
import torch

import moe_seg_plugin  # noqa: F401  (compat layer + registrations)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


TOOLS = str(pathlib.Path(__file__).resolve().parents[1] / 'tools')


@pytest.fixture
def tool():
    """A function giving ``tools/<name>.py`` as a module (tools/ is not a
    package; a tool may import another by name)."""

    def load(name: str):
        sys.path.insert(0, TOOLS)
        try:
            return importlib.import_module(name)
        finally:
            sys.path.remove(TOOLS)

    return load


#: Config folders whose backbones come from mmpretrain's model zoo
#: (torchvision): without the mmpretrain extra, tests that build them skip;
#: tests/e2e/test_mmpretrain_backbones.py installs the extra and runs them.
MMPRETRAIN_FOLDERS = ('convnext', )


@pytest.fixture
def skip_without_mmpretrain_extra():
    """A function that skips the test for a config path under one of
    ``MMPRETRAIN_FOLDERS`` when mmpretrain's model zoo cannot import."""

    def skip(path) -> None:
        if not set(MMPRETRAIN_FOLDERS) & set(str(path).split('/')):
            return
        from moe_seg_plugin_startup.mmpretrain_extra import \
            MissingMmpretrainExtra
        try:
            import mmpretrain.models  # noqa: F401
        except MissingMmpretrainExtra as exc:
            pytest.skip(f'needs the mmpretrain extra ({exc.reason})')

    return skip
