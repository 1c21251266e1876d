"""Shared by the tests that run MMSeg on generated street scenes: the repo
root, the MoE config they train, fast --cfg-options, a saved freshly
initialised checkpoint and the one error line of a refused tool run. (The
fixtures giving the scenes and the checkpoint are in tests/conftest.py.)"""
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
MOE_CONFIG = ('configs/erfnet/'
              'patchmoe_erfnet_fcn_1xb4-1k_street-cityscapes-256x256.py')


def fast_options(data_root: str, max_iters: int = 4) -> list:
    """--cfg-options for a few iterations at 64x64 crops."""
    return [
        f'train_dataloader.dataset.data_root={data_root}',
        f'val_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.data_root={data_root}',
        'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=0',
        'val_dataloader.num_workers=0',
        'test_dataloader.num_workers=0',
        'train_dataloader.dataset.pipeline.2.scale=(128,64)',
        'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
        'val_dataloader.dataset.pipeline.1.scale=(128,64)',
        'test_dataloader.dataset.pipeline.1.scale=(128,64)',
        'model.data_preprocessor.size=(64,64)',
        f'train_cfg.max_iters={max_iters}',
        'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1',
        'param_scheduler.0.end=100',
    ]


def save_fresh_checkpoint(path, options=None) -> str:
    """Save a checkpoint of the freshly initialised MoE_CONFIG model (with
    ``options`` merged into the config) the way MMEngine saves them
    (``state_dict`` and ``meta``)."""
    import torch
    from mmseg.registry import MODELS

    from moe_seg_plugin.engine import load_config
    torch.manual_seed(0)
    cfg = load_config(str(ROOT / MOE_CONFIG), options)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), path)
    return str(path)


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one ``error:`` line of a tool run refused with exit code 2 (no
    traceback)."""
    assert result.returncode == 2, result.stderr[-4000:]
    assert 'Traceback' not in result.stderr, result.stderr[-4000:]
    lines = [line for line in result.stderr.splitlines()
             if line.startswith('error: ')]
    assert len(lines) == 1, result.stderr[-4000:]
    return lines[0]
