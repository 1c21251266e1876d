"""The mmpretrain extra: installed as docs/en/get_started.md says,
UPerNet + ConvNeXt-T with a PatchConvMoE inside the backbone trains a step
and predicts, and all the ConvNeXt configs build and run.

The virtual environment sees this one's packages (a path file, as in
test_mim.py) and gets the plugin with its extra on top:
``pip install -e ".[mmpretrain]"`` adds torch 2.14.1 and torchvision 0.29.1
(about 5.5 GB; pip takes them from the registry or the local disk).
"""
import json
import os
import pathlib
import subprocess
import sys
import sysconfig

import pytest

from moe_seg_plugin.datasets import write_cityscapes

from street_runs import ROOT  # noqa: I100

pytestmark = pytest.mark.slow

CONFIG = ('configs/convnext/patchmoe-backbone_upernet_convnext-t_'
          '1xb4-1k_street-cityscapes-256x256.py')
LAYER = 'backbone.stages.3.0.depthwise_conv'
#: The docs' page that gives the install command of the extra.
INSTALL_DOCS = ROOT / 'docs' / 'en' / 'get_started.md'
#: The install command of the extra (run in the checkout).
INSTALL = 'pip install -e ".[mmpretrain,tests]"'


def _run(args, cwd=ROOT, timeout=900) -> subprocess.CompletedProcess:
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    env.pop('MOE_SEG_DEBUG', None)
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def python(tmp_path_factory) -> str:
    """The venv's python, after the docs' install of the extra."""
    venv = tmp_path_factory.mktemp('mmpretrain_venv')
    made = _run([sys.executable, '-m', 'venv', venv])
    assert made.returncode == 0, made.stderr
    python = str(venv / 'bin' / 'python')
    purelib = _run([python, '-c', 'import sysconfig; print(sysconfig.'
                    'get_paths()["purelib"])']).stdout.strip()
    parent = sysconfig.get_paths()['purelib']
    pathlib.Path(purelib, 'parent_env.pth').write_text(parent + '\n')
    command = INSTALL.split()[1:]
    installed = _run([python, '-m', 'pip', *command[:1], '-q',
                      *(arg.strip('"') for arg in command[1:])])
    assert installed.returncode == 0, installed.stderr[-3000:]
    return python


@pytest.fixture(scope='module')
def street(tmp_path_factory) -> str:
    """Scenes large enough for a 3x3 grid on ConvNeXt's 1/32 map at
    128x128 crops (4x4)."""
    root = tmp_path_factory.mktemp('street_128')
    write_cityscapes(str(root), num_train=4, num_val=2, height=128,
                     width=256, seed=5)
    return str(root)


def _options(root: str) -> list:
    return [
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'test_dataloader.num_workers=0',
        'train_dataloader.dataset.pipeline.2.scale=(256,128)',
        'train_dataloader.dataset.pipeline.3.crop_size=(128,128)',
        'val_dataloader.dataset.pipeline.1.scale=(256,128)',
        'test_dataloader.dataset.pipeline.1.scale=(256,128)',
        'model.data_preprocessor.size=(128,128)',
        'train_cfg.max_iters=1', 'train_cfg.val_interval=1',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=1',
    ]


def test_the_docs_give_the_install_command():
    assert INSTALL in INSTALL_DOCS.read_text()


def test_the_extra_brings_torch_and_torchvision_that_fit(python):
    out = _run([python, '-c', 'import torch, torchvision; '
                'print(torch.__version__.split("+")[0], '
                'torchvision.__version__.split("+")[0])'])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ['2.14.1', '0.29.1']


def test_convnext_with_moe_in_the_backbone_trains_and_predicts(
        python, street, tmp_path):
    work = tmp_path / 'work'
    trained = _run([python, 'tools/train.py', CONFIG, '--work-dir', work,
                    '--cfg-options', *_options(street)])
    assert trained.returncode == 0, trained.stderr[-3000:]
    checkpoint = work / 'iter_1.pth'
    assert checkpoint.is_file()
    stats = [json.loads(line) for line in
             (work / 'routing_stats.json').read_text().splitlines()]
    assert any(LAYER in str(record) for record in stats)

    image = next(pathlib.Path(street, 'leftImg8bit', 'val').rglob('*.png'))
    code = (
        'import sys\n'
        'from mmseg.apis import init_model, inference_model\n'
        'from moe_seg_plugin.models import moe_layers\n'
        'model = init_model(sys.argv[1], sys.argv[2], device="cpu",\n'
        '                   cfg_options={"model.data_preprocessor.size":\n'
        '                                (128, 128)})\n'
        'result = inference_model(model, sys.argv[3])\n'
        'print(list(moe_layers(model)))\n'
        'print(tuple(result.pred_sem_seg.data.shape))\n')
    predicted = _run(
        [python, '-c', code, ROOT / CONFIG, checkpoint, image], cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    layers, shape = predicted.stdout.strip().splitlines()[-2:]
    assert layers == str([LAYER])
    assert shape == '(1, 128, 256)'


def test_moe_in_mmpretrain_resnet(python):
    """The other zoo backbone the docs name: a PatchConvMoE at
    ``backbone.layer4.1.conv2`` of ``mmpretrain.ResNet``."""
    code = (
        'import torch, moe_seg_plugin\n'
        'from mmengine.registry import init_default_scope\n'
        'from mmseg.registry import MODELS\n'
        'from moe_seg_plugin.models import moe_layers\n'
        'init_default_scope("mmseg")\n'
        'model = MODELS.build(dict(\n'
        '    type="PatchMoESegmentor",\n'
        '    backbone=dict(type="mmpretrain.ResNet", depth=18),\n'
        '    decode_head=dict(type="FCNHead", in_channels=512, channels=16,\n'
        '                     num_classes=3),\n'
        '    moe_layers=[dict(target="backbone.layer4.1.conv2",\n'
        '                     num_experts=4, top_k=2, grid=(2, 2))]))\n'
        'out = model(torch.rand(1, 3, 64, 64), mode="tensor")\n'
        'print(list(moe_layers(model)), tuple(out.shape))\n')
    out = _run([python, '-c', code])
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == \
        "['backbone.layer4.1.conv2'] (1, 3, 2, 2)"


def test_every_convnext_config_builds_and_runs(python):
    """The config tests on the ConvNeXt configs, which they skip without
    the extra."""
    out = _run([python, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                '-n', '0', 'tests/configs/test_configs.py',
                'tests/models/test_stock_cfg.py', '-k', 'convnext', '-rs'])
    assert out.returncode == 0, out.stdout[-3000:]
    assert '9 passed' in out.stdout and 'skipped' not in out.stdout, \
        out.stdout[-2000:]
