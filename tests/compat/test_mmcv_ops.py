"""The mmcv-lite stand-in for mmcv.ops."""
import subprocess
import sys

import pytest
import torch

from moe_seg_plugin_startup import mmcv_ops


def test_mmseg_models_import_after_the_plugin():
    code = ('import moe_seg_plugin, mmseg.models, mmcv.ops;'
            'from mmseg.registry import MODELS;'
            'MODELS.build(dict(type="FocalLoss", use_sigmoid=True));'
            'print("ok")')
    result = subprocess.run([sys.executable, '-c', code],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith('ok')


def test_point_sample_bilinear():
    image = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    points = torch.tensor([[[0.5, 0.5], [0.25, 0.25], [0.75, 0.25]]])
    out = mmcv_ops.point_sample(image, points)
    torch.testing.assert_close(out, torch.tensor([[[1.5, 0.0, 1.0]]]))
    grid = points.view(1, 3, 1, 2)
    assert mmcv_ops.point_sample(image, grid).shape == (1, 1, 3, 1)


def test_sigmoid_focal_loss_matches_mmseg_python_version():
    from mmseg.models.losses.focal_loss import py_sigmoid_focal_loss
    pred = torch.randn(10, 4)
    target = torch.randint(0, 5, (10, ))  # 4 means no class
    one_hot = torch.nn.functional.one_hot(target, 5)[:, :4].float()
    expected = py_sigmoid_focal_loss(
        pred, one_hot, None, gamma=2.0, alpha=0.3, reduction='none')
    got = mmcv_ops.sigmoid_focal_loss(pred, target, 2.0, 0.3, None, 'none')
    torch.testing.assert_close(got, expected)
    weight = torch.rand(4)
    weighted = mmcv_ops.sigmoid_focal_loss(pred, target, 2.0, 0.3, weight,
                                           'sum')
    row = torch.where(target < 4, weight[target.clamp(max=3)],
                      torch.zeros(()))
    torch.testing.assert_close(weighted, (expected * row[:, None]).sum())
    assert mmcv_ops.sigmoid_focal_loss(pred, target).item() == pytest.approx(
        mmcv_ops.sigmoid_focal_loss(pred, target, reduction='sum').item() /
        10)


def test_missing_op_names_itself_and_the_fix():
    module = mmcv_ops.build_fallback_module()
    with pytest.raises(ModuleNotFoundError,
                       match=r'mmcv\.ops\.RoIAlign needs mmcv.s compiled '
                       r'operators.*Install full mmcv'):
        module.RoIAlign
    assert not hasattr(module, '__path__')


def test_from_import_of_missing_op_is_module_not_found():
    code = ('import moe_seg_plugin\n'
            'from moe_seg_plugin.compat import compiled_ops_available\n'
            'if compiled_ops_available(): print("full"); raise SystemExit\n'
            'try:\n'
            '    from mmcv.ops import CrissCrossAttention\n'
            'except ModuleNotFoundError as e:\n'
            '    print("caught", e)\n')
    result = subprocess.run([sys.executable, '-c', code],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert out.startswith('full') or 'caught mmcv.ops.CrissCrossAttention' \
        in out


def test_nothing_changes_when_compiled_ops_exist(monkeypatch):
    monkeypatch.delitem(sys.modules, 'mmcv.ops', raising=False)
    monkeypatch.setattr(mmcv_ops, 'compiled_ops_available', lambda: True)
    assert mmcv_ops.install_mmcv_ops_fallback() is False
    assert 'mmcv.ops' not in sys.modules


def test_install_is_idempotent():
    first = mmcv_ops.install_mmcv_ops_fallback()
    assert mmcv_ops.install_mmcv_ops_fallback() == first
