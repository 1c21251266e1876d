"""A checkpoint holding objects that safe loading refuses is named with
what was refused and how to load a trusted file; a truncated file keeps
its own message."""
import os

import torch
from mmengine.runner.checkpoint import _load_checkpoint

from moe_seg_plugin.engine import as_setup_error


class _Payload:

    def __init__(self, *call):
        self.call = call

    def __reduce__(self):
        return self.call


def _refusal(path) -> str:
    try:
        _load_checkpoint(str(path), map_location='cpu')
    except Exception as exc:  # noqa: BLE001
        return str(as_setup_error(exc))
    raise AssertionError('loaded')


def test_a_blocked_module_is_named(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': _Payload(os.system, ('true', ))},
               path)
    message = _refusal(path)
    assert message.startswith(
        f"checkpoint '{path}' holds objects that safe loading (torch.load, "
        f'weights_only=True) refuses: {os.system.__module__}.system (its '
        f'module {os.system.__module__} is blocked). ')
    assert 'torch.load(path, weights_only=False)' in message
    assert 'cut short' not in message


def test_a_global_not_allowed_is_named(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'x': _Payload(print, ('hello', ))}, path)
    assert ('refuses: print (not allowed by default). A checkpoint saved '
            'by MMEngine or this plugin holds none') in _refusal(path)


def test_a_cut_checkpoint_keeps_its_message(tmp_path):
    path = tmp_path / 'half.pth'
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, path)
    path.write_bytes(path.read_bytes()[:2000])
    assert _refusal(path).startswith(
        f"checkpoint '{path}' is not a readable checkpoint (cut short")
