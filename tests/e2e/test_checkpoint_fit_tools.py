"""A checkpoint of another architecture (ENet-MoE weights for the ERFNet-MoE
street config) is refused by every tool that loads one, with exit code 2
and one ``error:`` line naming the file; a stock dense checkpoint still
loads. The tools run in-process (``main(argv)``)."""

import pytest
import torch

from street_runs import MOE_CONFIG, ROOT, fast_options  # noqa: I100

pytestmark = pytest.mark.slow

CONFIG = str(ROOT / MOE_CONFIG)
ENET_CONFIG = str(ROOT / 'configs/enet/'
                  'patchmoe_enet_1xb4-1k_street-cityscapes-256x256.py')
STOCK_CONFIG = str(ROOT / 'configs/erfnet/'
                   'erfnet_fcn_1xb4-1k_street-cityscapes-256x256.py')


def _save(config: str, path) -> str:
    """Fresh weights of ``config``'s model, saved as MMEngine saves them."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from moe_seg_plugin.engine import load_config
    init_default_scope('mmseg')
    model = MODELS.build(load_config(config).model)
    model.init_weights()
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path)


@pytest.fixture(autouse=True)
def _current_logger(request):
    """A current MMEngine logger writing to this test's captured streams (a
    tool run in-process logs to the current one, which may be an earlier
    test's, whose streams are closed)."""
    from mmengine.logging import MMLogger
    MMLogger.get_instance(f'checkpoint_fit_tools.{request.node.name}')


@pytest.fixture(scope='module')
def enet_checkpoint(tmp_path_factory) -> str:
    return _save(ENET_CONFIG,
                 tmp_path_factory.mktemp('enet') / 'enet_moe.pth')


def _refused(tool, name: str, argv: list, capsys, path: str) -> str:
    """Run tools/<name>.py in-process; its one error line."""
    code = tool(name).main(argv)
    err = capsys.readouterr().err
    assert code == 2, err[-4000:]
    assert 'Traceback' not in err, err[-4000:]
    lines = [line for line in err.splitlines() if line.startswith('error: ')]
    assert len(lines) == 1, err[-4000:]
    assert lines[0].startswith(
        f"error: checkpoint '{path}' does not fit the model (fewer than "
        '50% of its tensors fit): 1 of its 740 tensors fit, 1 have another '
        'shape, 738 are unknown to the model (which has 399)'), lines[0]
    assert lines[0].endswith('check CHECKPOINT / load_from')
    return lines[0]


def test_test_refuses_another_architecture(tool, street_root, enet_checkpoint,
                                           tmp_path, capsys):
    _refused(tool, 'test', [CONFIG, enet_checkpoint, '--work-dir',
                            str(tmp_path), '--cfg-options'] +
             fast_options(street_root), capsys, enet_checkpoint)


def test_export_refuses_another_architecture(tool, enet_checkpoint, tmp_path,
                                             capsys):
    for name in ('onnx', 'onnxscript', 'onnxruntime'):
        pytest.importorskip(name)
    out = tmp_path / 'enet.onnx'
    _refused(tool, 'export', [CONFIG, enet_checkpoint, '--shape', '64',
                              '128', '--out', str(out)], capsys,
             enet_checkpoint)
    assert not out.exists()


def test_training_refuses_it_as_load_from(tool, street_root, enet_checkpoint,
                                          tmp_path, capsys):
    _refused(tool, 'train', [CONFIG, '--work-dir', str(tmp_path),
                             '--cfg-options'] + fast_options(street_root) +
             [f'load_from={enet_checkpoint}'], capsys, enet_checkpoint)
    assert not list(tmp_path.glob('iter_*.pth'))


@pytest.mark.parametrize('name, extra', [
    ('analyze_routing', ['--cfg-options']),
    ('eval_fixed_expert', ['--experts', '0', '--cfg-options']),
    ('visualize_routing', ['--img']),
    ('benchmark', ['--shape', '64', '128', '--device', 'cpu']),
])
def test_analysis_tools_refuse_another_architecture(tool, name, extra,
                                                    street_root,
                                                    enet_checkpoint,
                                                    tmp_path, capsys):
    if extra[-1] == '--cfg-options':
        extra = ['--work-dir', str(tmp_path)] + extra + \
            fast_options(street_root)
    elif extra == ['--img']:
        extra = ['--img', f'{street_root}/leftImg8bit/val', '--out-dir',
                 str(tmp_path)]
    _refused(tool, name, [CONFIG, enet_checkpoint] + extra, capsys,
             enet_checkpoint)


def test_a_stock_dense_checkpoint_still_tests(tool, street_root, tmp_path,
                                              capsys):
    stock = _save(STOCK_CONFIG, tmp_path / 'stock.pth')
    code = tool('test').main([CONFIG, stock, '--work-dir',
                              str(tmp_path / 'work'), '--cfg-options'] +
                             fast_options(street_root))
    assert code == 0, capsys.readouterr().err[-4000:]
