"""tools/analysis_tools/visualize_routing.py on generated scenes and a fresh
checkpoint."""
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from street_runs import MOE_CONFIG, ROOT  # noqa: I100

TOOL = 'tools/analysis_tools/visualize_routing.py'
STOCK_CONFIG = 'configs/erfnet/erfnet_fcn_1xb4-1k_street-cityscapes-256x256.py'
LAYER = 'decode_head.convs.0'
# The 64x128 scenes are resized to 128x256 for the model; slide settings
# that the tool must override with whole-image inference.
OPTIONS = ['test_pipeline.1.scale=(256,128)', 'model.test_cfg.mode=slide',
           'model.test_cfg.crop_size=(32,32)', 'model.test_cfg.stride=(16,16)']
ZOOM = 6  # 64-pixel-high scenes are drawn 384 pixels high
STRIP = 24


def _run(args, expect=0):
    result = subprocess.run([sys.executable, TOOL] + args, cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == expect, (result.stdout[-3000:] +
                                         result.stderr[-5000:])
    return result


def _model_routing(checkpoint, image):
    """The layer's routing of ``image`` from MMSeg's inference API."""
    from mmseg.apis import inference_model, init_model

    from moe_seg_plugin.engine.run_setup import load_config
    from moe_seg_plugin.models.injection import moe_layers
    cfg = load_config(str(ROOT / MOE_CONFIG),
                      {'test_pipeline.1.scale': (256, 128)})
    model = init_model(cfg, checkpoint, device='cpu')
    inference_model(model, image)
    return moe_layers(model)[LAYER].last_routing


@pytest.mark.slow
def test_pictures_and_routing_of_a_folder(street_root, fresh_checkpoint,
                                          tmp_path):
    import mmcv

    from moe_seg_plugin.visualization.routing_map import EXPERT_PALETTE
    out = tmp_path / 'maps'
    result = _run([MOE_CONFIG, fresh_checkpoint, '--img',
                   f'{street_root}/leftImg8bit/val', '--out-dir', str(out),
                   '--cfg-options'] + OPTIONS)
    assert '2 routing picture(s)' in result.stdout
    pngs = sorted(out.glob('*.png'))
    assert len(pngs) == 2
    for png in pngs:  # captions + panels + legend; image|prediction|routing
        assert mmcv.imread(str(png)).shape == (STRIP + 64 * ZOOM + STRIP,
                                               3 * 128 * ZOOM, 3)

    summary = json.loads((out / 'routing.json').read_text())
    assert len(summary) == 2
    image_path = sorted(summary)[0]
    entry = summary[image_path]
    cells = entry['layers'][LAYER]['cells']
    assert entry['layers'][LAYER]['grid'] == [3, 3] and len(cells) == 9
    # Whole-image inference: the 3x3 grid tiles the whole 64x128 image.
    assert cells[0]['box'][:2] == [0, 0] and cells[-1]['box'][2:] == [128, 64]
    for cell in cells:
        assert len(cell['experts']) == 2 and abs(sum(cell['weights']) -
                                                 1) < 1e-3
    record = _model_routing(fresh_checkpoint, image_path)
    assert [c['experts'] for c in cells] == record.experts.tolist()
    assert np.allclose([c['weights'] for c in cells], record.weights,
                       atol=1e-4)

    # A pixel of the first cell's first band: the image pixel tinted with
    # that expert's colour (opacity 0.45), below the labels.
    drawn = mmcv.imread(entry['png'], channel_order='rgb')
    image = mmcv.imread(image_path, channel_order='rgb')
    y, x = int(cells[0]['box'][3] * ZOOM) - 8, 8
    expected = (0.55 * image[y // ZOOM, x // ZOOM] +
                0.45 * np.array(EXPERT_PALETTE[cells[0]['experts'][0]]))
    got = drawn[STRIP + y, 2 * 128 * ZOOM + x]
    assert np.abs(got - np.round(expected)).max() <= 1
    assert (drawn[STRIP + y, x] == image[y // ZOOM, x // ZOOM]).all()


@pytest.fixture
def _current_logger(request):
    """A current MMEngine logger writing to this test's captured streams
    (the tool runs in-process and logs to the current one)."""
    from mmengine.logging import MMLogger
    MMLogger.get_instance(f'visualize_routing.{request.node.name}')


def _refused(tool, argv, capsys) -> str:
    """Run the tool in-process; what it printed to stderr."""
    code = tool('visualize_routing').main(argv)
    err = capsys.readouterr().err
    assert code == 2, err[-4000:]
    assert 'Traceback' not in err
    return err


def test_a_missing_image_is_a_clear_error(tool, tmp_path, capsys):
    err = _refused(tool, [MOE_CONFIG, str(tmp_path / 'model.pth'), '--img',
                          str(tmp_path / 'nope.png')], capsys)
    assert f"--img: '{tmp_path / 'nope.png'}' does not exist" in err


@pytest.mark.slow
def test_a_stock_model_is_a_clear_error(tool, street_root, fresh_checkpoint,
                                        tmp_path, capsys, _current_logger):
    err = _refused(tool, [str(ROOT / STOCK_CONFIG), fresh_checkpoint,
                          '--img', f'{street_root}/leftImg8bit/val',
                          '--out-dir', str(tmp_path / 'maps')], capsys)
    assert 'has no PatchConvMoE layer' in err
    assert not list(pathlib.Path(tmp_path).rglob('*.png'))


def test_help_mentions_whole_mode(tool, capsys):
    with pytest.raises(SystemExit) as done:
        tool('visualize_routing').main(['--help'])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "'whole' mode" in out
    for option in ('--img', '--out-dir', '--layer', '--device',
                   '--cfg-options'):
        assert option in out
