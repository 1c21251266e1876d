"""An mmpretrain backbone without the mmpretrain extra ends with one line
that names the extra and its install command.

The processes here get a stand-in ``torchvision`` first on PYTHONPATH that
fails the way a missing or mismatched torchvision does, so the tests run the
same with and without the extra installed.
"""
import importlib.abc
import os
import pathlib
import subprocess
import sys
import types

import pytest

import moe_seg_plugin_startup
from moe_seg_plugin_startup.mmpretrain_extra import (INSTALL,
                                                     INSTALL_FROM_CHECKOUT,
                                                     ExplainZooImport,
                                                     MissingMmpretrainExtra,
                                                     torchvision_failed)

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = ('configs/convnext/patchmoe-backbone_upernet_convnext-t_'
          '1xb4-1k_street-cityscapes-256x256.py')
#: How a torchvision import fails: missing, or built for another torch
#: (PyPI's torchvision beside the lite extra's torch 2.13).
FAILURES = {
    'missing': "raise ModuleNotFoundError(\"No module named 'torchvision'\","
               " name='torchvision')",
    'mismatched': 'raise RuntimeError("operator torchvision::nms does not '
                  'exist")',
}


def _broken_torchvision(tmp_path, how: str) -> str:
    folder = tmp_path / how
    (folder / 'torchvision').mkdir(parents=True)
    (folder / 'torchvision' / '__init__.py').write_text(FAILURES[how] + '\n')
    return str(folder)


def _run(args, tmp_path, how: str, **env) -> subprocess.CompletedProcess:
    environ = {**os.environ, 'OMP_NUM_THREADS': '1', **env}
    environ.pop('MOE_SEG_DEBUG', None)
    if moe_seg_plugin_startup.DISABLE_ENV not in env:
        environ.pop(moe_seg_plugin_startup.DISABLE_ENV, None)
    environ['PYTHONPATH'] = os.pathsep.join(
        [_broken_torchvision(tmp_path, how)] +
        [p for p in [os.environ.get('PYTHONPATH')] if p])
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=600)


def _assert_names_the_extra(line: str) -> None:
    assert "mmpretrain extra" in line, line
    assert INSTALL in line and INSTALL_FROM_CHECKOUT in line, line


class _Failing(importlib.abc.Loader):

    def __init__(self, error):
        self.error = error

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise self.error


def test_torchvision_failures_are_recognised():
    assert torchvision_failed(
        ModuleNotFoundError("No module named 'torchvision'",
                            name='torchvision'))
    assert torchvision_failed(
        RuntimeError('operator torchvision::nms does not exist'))
    assert not torchvision_failed(
        ModuleNotFoundError("No module named 'ftfy'", name='ftfy'))
    assert not torchvision_failed(ValueError('bad arch'))


def test_the_loader_explains_torchvision_and_keeps_other_errors():
    module = types.ModuleType('mmpretrain.models')
    with pytest.raises(MissingMmpretrainExtra) as info:
        ExplainZooImport(_Failing(RuntimeError(
            'operator torchvision::nms does not exist'))).exec_module(module)
    assert info.value.reason == 'operator torchvision::nms does not exist'
    assert isinstance(info.value, ImportError)  # `except ImportError` works
    _assert_names_the_extra(str(info.value))
    other = KeyError('arch')
    with pytest.raises(KeyError) as kept:
        ExplainZooImport(_Failing(other)).exec_module(module)
    assert kept.value is other


@pytest.mark.parametrize('how', sorted(FAILURES))
def test_mmseg_build_ends_with_the_advice(tmp_path, how):
    """MMSeg's registry, no plugin imported: the start-up hook's line."""
    code = ('from mmseg.registry import MODELS\n'
            'from mmengine.registry import init_default_scope\n'
            'init_default_scope("mmseg")\n'
            'MODELS.build(dict(type="mmpretrain.ConvNeXt", arch="tiny"))\n')
    result = _run(['-c', code], tmp_path, how)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('moe_seg_plugin_startup.mmpretrain_extra.'
                           'MissingMmpretrainExtra:'), result.stderr[-2000:]
    _assert_names_the_extra(last)


@pytest.mark.slow
@pytest.mark.parametrize('hook', ['1', '0'])
def test_train_prints_one_line_naming_the_section_and_extra(tmp_path, hook):
    from moe_seg_plugin.datasets import write_cityscapes
    data = str(tmp_path / 'street')
    write_cityscapes(data, num_train=1, num_val=1, height=32, width=64)
    roots = [f'{loader}.dataset.data_root={data}'
             for loader in ('train_dataloader', 'val_dataloader',
                            'test_dataloader')]
    result = _run(['tools/train.py', CONFIG, '--work-dir',
                   str(tmp_path / 'work'), '--cfg-options', *roots],
                  tmp_path, 'missing', MOE_SEG_PLUGIN_STARTUP=hook)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith('error: ')]
    assert len(errors) == 1 and 'Traceback' not in result.stderr, \
        result.stderr[-2000:]
    assert errors[0].startswith(
        "error: model.backbone: type='mmpretrain.ConvNeXt' needs the "
        "plugin's mmpretrain extra"), errors[0]
    assert "No module named 'torchvision'" in errors[0]
    _assert_names_the_extra(errors[0])
