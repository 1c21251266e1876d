"""Shared test fixtures: import the plugin first (as configs do)."""
import importlib.util
import os
import pathlib

import pytest
import torch

import moe_seg_plugin  # noqa: F401  (compat layer + registrations)
from moe_seg_plugin.datasets import write_cityscapes

from street_runs import save_fresh_checkpoint  # noqa: I100


def pytest_configure(config) -> None:
    """With pytest-xdist's workers (pytest.ini), one thread each: two
    workers on two cores, and no OpenMP pool of one spinning against the
    other's (the processes the tests start inherit it)."""
    if os.environ.get('PYTEST_XDIST_WORKER'):
        os.environ['OMP_NUM_THREADS'] = '1'
        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _forget_new_mmengine_loggers():
    """Tools run in-process build MMEngine loggers whose handlers write to
    this test's captured streams, and a Runner names its logger by the
    second it started, so a run in the next test can get this one back and
    write to closed streams. Loggers a test creates end with it."""
    from mmengine.logging import MMLogger
    before = set(MMLogger._instance_dict)
    yield
    for name in set(MMLogger._instance_dict) - before:
        logger = MMLogger._instance_dict.pop(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()


TOOLS = pathlib.Path(__file__).resolve().parents[1] / 'tools'


def load_tool(name: str):
    """``tools/[<group>/]<name>.py`` as a fresh module (tools/ is not a
    package, and no tool imports another)."""
    paths = sorted(TOOLS.glob(f'{name}.py')) + sorted(
        TOOLS.glob(f'*/{name}.py'))
    assert len(paths) == 1, f'tools/**/{name}.py: {paths}'
    spec = importlib.util.spec_from_file_location(f'tool_{name}', paths[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tool():
    """A function giving the tool named ``name`` as a module."""
    return load_tool


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


@pytest.fixture(scope='session')
def street_root(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp('street_cityscapes')
    write_cityscapes(str(root), num_train=8, num_val=2, height=64, width=128,
                     seed=3)
    return str(root)


@pytest.fixture(scope='session')
def fresh_checkpoint(tmp_path_factory) -> str:
    """A checkpoint of the freshly initialised MoE_CONFIG model."""
    return save_fresh_checkpoint(
        tmp_path_factory.mktemp('checkpoint') / 'fresh.pth')
