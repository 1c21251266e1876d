"""MMSeg's own shipped tools and APIs on the plugin's configs, run as users
run them: fresh processes, no ``import moe_seg_plugin`` of ours first."""
import os
import pathlib
import subprocess
import sys

import mmseg
import pytest

from street_runs import MOE_CONFIG, ROOT  # noqa: I100

pytestmark = pytest.mark.slow

MMSEG_TOOLS = pathlib.Path(mmseg.__file__).parent / '.mim' / 'tools'
MOE_ENET = 'configs/enet/patchmoe_enet_1xb4-1k_street-cityscapes-256x256.py'


def _run(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    env.pop('MOE_SEG_PLUGIN_STARTUP', None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_print_config_reads_a_config_inheriting_the_plugin(tmp_path):
    user = tmp_path / 'my_moe.py'
    user.write_text(f"_base_ = 'moe_seg_plugin::{MOE_ENET[8:]}'\n"
                    'model = dict(decode_head=dict(moe_cfg=dict(top_k=1)))\n')
    result = _run(str(MMSEG_TOOLS / 'misc' / 'print_config.py'), str(user),
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "type='PatchMoEHead'" in result.stdout
    assert 'top_k=1' in result.stdout


def test_browse_dataset_draws_plugin_configs(street_root, tmp_path):
    out = tmp_path / 'browse'
    result = _run(
        str(MMSEG_TOOLS / 'analysis_tools' / 'browse_dataset.py'), MOE_ENET,
        '--output-dir', str(out), '--not-show', '--cfg-options',
        f'train_dataloader.dataset.data_root={street_root}',
        'train_dataloader.dataset.indices=2')
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list(out.glob('*.png'))) == 2


def test_init_model_and_inference_model_in_a_fresh_process(
        street_root, fresh_checkpoint):
    image = next(pathlib.Path(street_root).rglob('*_leftImg8bit.png'))
    code = (
        'from mmseg.apis import init_model, inference_model\n'
        f'model = init_model({MOE_CONFIG!r}, {fresh_checkpoint!r}, '
        "device='cpu')\n"
        f'result = inference_model(model, {str(image)!r})\n'
        'print(type(model.decode_head).__name__, '
        'tuple(result.pred_sem_seg.data.shape))')
    result = _run('-c', code)
    assert result.returncode == 0, result.stderr[-3000:]
    name, shape = result.stdout.strip().splitlines()[-1].split(' ', 1)
    assert name.startswith('PatchMoE')
    assert shape.startswith('(1, ')
