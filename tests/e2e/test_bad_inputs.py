"""Bad inputs end in one clear line (``error: ...``, exit code 2), not a
traceback: empty or missing data folders, unknown config keys, a config
with a syntax error, a truncated checkpoint; and ENet trains with
``randomness.deterministic=True``."""
import pathlib
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from mmengine.runner import Runner

from moe_seg_plugin.engine import (SetupError, as_setup_error,
                                   check_data_roots, load_config, run_cli)

from street_runs import MOE_CONFIG, ROOT, error_line, fast_options  # noqa: I100

ENET_CONFIG = ('configs/enet/'
               'patchmoe_enet_1xb4-1k_street-cityscapes-256x256.py')


def _cli(tool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f'tools/{tool}', *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def _empty_layout(root: pathlib.Path) -> str:
    """Cityscapes folders without one image (a stray .jpg does not
    count)."""
    for split in ('train', 'val'):
        (root / 'leftImg8bit' / split / 'city').mkdir(parents=True)
        (root / 'gtFine' / split / 'city').mkdir(parents=True)
    (root / 'leftImg8bit' / 'train' / 'city' / 'photo.jpg').write_bytes(b'')
    return str(root)


def _truncated(checkpoint: str, tmp_path: pathlib.Path) -> str:
    data = pathlib.Path(checkpoint).read_bytes()
    path = tmp_path / 'half.pth'
    path.write_bytes(data[:len(data) // 2])
    return str(path)


# (a) Data folders, checked before the Runner.
def _options(root: str) -> dict:
    return {f'{loader}.dataset.data_root': root
            for loader in ('train_dataloader', 'val_dataloader',
                           'test_dataloader')}


def test_an_image_folder_without_images_is_refused(tmp_path):
    cfg = load_config(str(ROOT / MOE_CONFIG),
                      _options(_empty_layout(tmp_path)))
    with pytest.raises(FileNotFoundError) as info:
        check_data_roots(cfg)
    message = str(info.value)
    assert message.startswith(
        f"train_dataloader.dataset: image folder "
        f"'{tmp_path}/leftImg8bit/train' holds no image ending in "
        f"'_leftImg8bit.png' (img_suffix; searched recursively")
    assert '--layout cityscapes' in message and '\n' not in message
    cfg.train_dataloader.dataset.img_suffix = '.jpg'  # now it finds one
    with pytest.raises(FileNotFoundError, match='val_dataloader.dataset'):
        check_data_roots(cfg)


def test_a_missing_annotation_folder_is_refused(street_root, tmp_path):
    cfg = load_config(str(ROOT / MOE_CONFIG), _options(street_root))
    check_data_roots(cfg)  # the generated scenes are complete
    cfg.val_dataloader.dataset.data_prefix.seg_map_path = 'gtFine/absent'
    with pytest.raises(FileNotFoundError) as info:
        check_data_roots(cfg)
    assert str(info.value).startswith(
        f"val_dataloader.dataset: annotation folder "
        f"'{street_root}/gtFine/absent' (data_prefix.seg_map_path) does not "
        f"exist")


# (c) Config syntax.
def test_a_syntax_error_names_the_file_and_line(tmp_path):
    broken = tmp_path / 'broken.py'
    broken.write_text("model = dict(type='EncoderDecoder')\n"
                      'crop_size = (256, 256\n')
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = ['{broken}']\n")
    for config in (broken, child):
        with pytest.raises(SetupError) as info:
            load_config(str(config))
        assert str(info.value) == (
            f"config file '{broken}', line 2: SyntaxError: '(' was never "
            f'closed (fix the Python syntax there)')


# (b) Unknown keywords, (d) unreadable checkpoints: the translation.
def test_an_unknown_keyword_names_the_section_class_and_allowed_keys():
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = load_config(str(ROOT / MOE_CONFIG),
                      {'model.decode_head.foo': 1})
    with pytest.raises(TypeError) as info:
        MODELS.build(cfg.model)
    error = as_setup_error(info.value)
    assert str(error).startswith(
        "model.decode_head: unknown key 'foo' for PatchMoEFCNHead "
        "(type='PatchMoEHead'); allowed: ['act_cfg', 'align_corners', ")
    assert "'moe'" in str(error) and "'num_convs'" in str(error)


def test_an_unknown_type_names_the_section_and_nearest_names():
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = load_config(str(ROOT / MOE_CONFIG),
                      {'model.backbone.type': 'ERFNett'})
    with pytest.raises(KeyError) as info:
        MODELS.build(cfg.model)
    assert str(as_setup_error(info.value)).startswith(
        "model.backbone.type: 'ERFNett' is not in the mmseg::model "
        "registry; nearest: ['ERFNet'")


def test_a_keyword_not_from_the_config_keeps_its_traceback():

    def build():
        torch.nn.Conv2d(1, 1, 1, foo=1)

    with pytest.raises(TypeError) as info:
        build()
    assert as_setup_error(info.value) is None


def test_a_truncated_checkpoint_is_not_readable(fresh_checkpoint, tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    path = _truncated(fresh_checkpoint, tmp_path)
    with pytest.raises(Exception) as info:
        _load_checkpoint(path, map_location='cpu')
    assert str(as_setup_error(info.value)).startswith(
        f"checkpoint '{path}' is not a readable checkpoint (cut short while "
        f'saving or copying, or not a torch file): ')


# run_cli: errors in the Runner's set-up steps vs. in the middle of training.
class _Runner(SimpleNamespace):
    """Runs MMEngine's own ``Runner.load_or_resume`` at the start of
    ``train()``, with a checkpoint loader that fails as told."""

    def load_checkpoint(self, path):
        raise self.loading_error

    def train(self):
        Runner.load_or_resume(self)
        raise self.training_error


def _runner(loading=None, training=None):
    return _Runner(_has_loaded=False, _resume=False, _load_from='x.pth',
                   loading_error=loading, training_error=training)


def test_run_cli_prints_a_checkpoint_refusal_as_one_line(capsys):
    refusal = ValueError('decode_head.moe: the checkpoint has 4 experts, '
                         'the model 8')
    assert run_cli(lambda: _runner(loading=refusal), 'train') == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f'error: {refusal}')


def test_run_cli_keeps_the_traceback_of_errors_in_training():

    class Loaded(_Runner):

        def load_checkpoint(self, path):
            pass

    runner = Loaded(**vars(_runner(training=ValueError('nan loss'))))
    with pytest.raises(ValueError, match='nan loss'):
        run_cli(lambda: runner, 'train')


def test_run_cli_prints_a_setup_error_anywhere(capsys):

    class Loaded(_Runner):

        def load_checkpoint(self, path):
            pass

    runner = Loaded(**vars(_runner(training=SetupError('bad data'))))
    assert run_cli(lambda: runner, 'train') == 2
    assert capsys.readouterr().err.startswith('error: bad data\n')


# The tools as users run them: in-process (``main(argv)``), since a refusal
# needs no process of its own.
CONFIG = str(ROOT / MOE_CONFIG)


@pytest.fixture
def refusal(tool, capsys, request):
    """A function running tools/<name>.py in-process and giving its one
    ``error:`` line (exit code 2, no traceback)."""
    from mmengine.logging import MMLogger

    # The tool logs to the current MMEngine logger: one on this test's
    # captured streams, not an earlier test's closed ones.
    MMLogger.get_instance(f'bad_inputs.{request.node.name}')

    def run(name: str, *argv: str) -> str:
        code = tool(name).main(list(argv))
        captured = capsys.readouterr()
        return error_line(subprocess.CompletedProcess(
            argv, code, captured.out, captured.err))

    return run


@pytest.mark.slow
def test_train_refuses_an_empty_image_folder(refusal, tmp_path):
    root = _empty_layout(tmp_path / 'data')
    line = refusal('train', CONFIG, '--work-dir', str(tmp_path / 'work'),
                   '--cfg-options', *fast_options(root))
    assert line.startswith(
        f"error: train_dataloader.dataset: image folder "
        f"'{root}/leftImg8bit/train' holds no image ending in "
        f"'_leftImg8bit.png'")
    assert (f'python tools/misc/generate_street_data.py --layout cityscapes '
            f'--out {root}') in line


@pytest.mark.slow
def test_test_refuses_a_missing_annotation_folder(refusal, street_root,
                                                  fresh_checkpoint,
                                                  tmp_path):
    line = refusal(
        'test', CONFIG, fresh_checkpoint, '--work-dir', str(tmp_path),
        '--cfg-options', *fast_options(street_root),
        'test_dataloader.dataset.data_prefix.seg_map_path=gtFine/absent')
    assert line.startswith(
        f"error: test_dataloader.dataset: annotation folder "
        f"'{street_root}/gtFine/absent' (data_prefix.seg_map_path) does not "
        f"exist")


@pytest.mark.slow
@pytest.mark.parametrize('option, expected', [
    ('model.decode_head.foo=1',
     "error: model.decode_head: unknown key 'foo' for PatchMoEFCNHead "
     "(type='PatchMoEHead'); allowed: ['act_cfg', "),
    ('train_cfg.foo=1',
     "error: train_cfg: unknown key 'foo' for IterBasedTrainLoop; allowed: "
     "['dynamic_intervals', 'max_iters', 'val_begin', 'val_interval']"),
], ids=['decode_head', 'train_cfg'])
def test_train_refuses_an_unknown_key(refusal, street_root, tmp_path, option,
                                      expected):
    line = refusal('train', CONFIG, '--work-dir', str(tmp_path),
                   '--cfg-options', *fast_options(street_root, max_iters=1),
                   option)
    assert line.startswith(expected)


@pytest.mark.slow
def test_train_refuses_a_config_with_a_syntax_error(refusal, tmp_path):
    config = tmp_path / 'broken.py'
    config.write_text(f"_base_ = ['{ROOT / MOE_CONFIG}']\n"
                      'model = dict(decode_head=dict(num_classes=19)\n')
    line = refusal('train', str(config))
    assert line == (f"error: config file '{config}', line 2: SyntaxError: "
                    f"'(' was never closed (fix the Python syntax there)")


@pytest.mark.slow
def test_train_and_test_refuse_a_truncated_checkpoint(refusal, street_root,
                                                      fresh_checkpoint,
                                                      tmp_path):
    path = _truncated(fresh_checkpoint, tmp_path)
    expected = (f"error: checkpoint '{path}' is not a readable checkpoint "
                f'(cut short while saving or copying, or not a torch file)')
    test = refusal('test', CONFIG, path, '--work-dir', str(tmp_path / 'test'),
                   '--cfg-options', *fast_options(street_root))
    assert test.startswith(expected)
    train = refusal('train', CONFIG, '--work-dir', str(tmp_path / 'train'),
                    '--cfg-options', *fast_options(street_root, max_iters=1),
                    f'load_from={path}')
    assert train.startswith(expected)


# (e) ENet in deterministic mode.
@pytest.mark.slow
def test_enet_trains_with_deterministic_algorithms(street_root, tmp_path):
    result = _cli('train.py', ENET_CONFIG, '--work-dir', str(tmp_path),
                  '--cfg-options', *fast_options(street_root, max_iters=1),
                  'randomness.seed=0', 'randomness.deterministic=True')
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / 'iter_1.pth').is_file()


GRID_ERROR = ("decode_head.convs.0: grid (40, 40) does not fit the layer's "
              'output (32, 32) at the crop size (64, 64); use a grid of at '
              'most (32, 32) (rows, cols), or patch_size')


@pytest.mark.slow
def test_train_refuses_a_grid_that_does_not_fit_the_crop(refusal,
                                                         street_root,
                                                         tmp_path):
    """Found when the model is built, before data or the first step."""
    line = refusal('train', CONFIG, '--work-dir', str(tmp_path),
                   '--cfg-options', *fast_options(street_root, max_iters=1),
                   'model.decode_head.moe.grid=(40,40)')
    assert line == f'error: {GRID_ERROR}'
    assert not list(tmp_path.rglob('*.pth'))


@pytest.mark.slow
def test_mmseg_train_tool_refuses_a_grid_that_does_not_fit(street_root,
                                                           tmp_path):
    """MMSeg's own tools/train.py: the routing-statistics hook every MoE
    config has checks before the first step."""
    import mmseg
    tool = pathlib.Path(mmseg.__file__).parent / '.mim' / 'tools' / 'train.py'
    result = subprocess.run(
        [sys.executable, str(tool), MOE_CONFIG, '--work-dir', str(tmp_path),
         '--cfg-options', *fast_options(street_root, max_iters=1),
         'model.decode_head.moe.grid=(40,40)'], cwd=ROOT,
        capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert f'SetupError: {GRID_ERROR}' in result.stderr, result.stderr[-3000:]
    assert 'Iter(train)' not in result.stdout + result.stderr
