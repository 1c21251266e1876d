"""The start-up hook: MMSeg imports and reads plugin configs from a fresh
interpreter, without ``import moe_seg_plugin`` first."""
import os
import site
import subprocess
import sys
import sysconfig

import pytest

import moe_seg_plugin_startup
from moe_seg_plugin.compat import compiled_ops_available

LITE = not compiled_ops_available()


def _fresh(code: str, **env) -> subprocess.CompletedProcess:
    environ = {**os.environ, **env}
    environ.pop(moe_seg_plugin_startup.DISABLE_ENV, None)
    environ.update(env)
    return subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=300, env=environ, cwd='/')


def test_the_pth_file_is_installed_beside_the_packages():
    folders = {sysconfig.get_paths()['purelib'], *site.getsitepackages()}
    found = [os.path.join(f, 'moe_seg_plugin_startup.pth') for f in folders
             if os.path.isfile(os.path.join(f, 'moe_seg_plugin_startup.pth'))]
    assert found, f'moe_seg_plugin_startup.pth in none of {sorted(folders)}'
    with open(found[0]) as f:
        assert f.read().startswith('import moe_seg_plugin_startup;')


def test_a_fresh_interpreter_has_the_hook_and_not_the_plugin():
    result = _fresh('import sys; print(any(type(f).__name__ == '
                    '"OpenMMLabStartupHook" for f in sys.meta_path), '
                    '"moe_seg_plugin" in sys.modules, "torch" in sys.modules)')
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ['True', 'False', 'False']


def test_the_environment_variable_switches_it_off():
    result = _fresh('import sys; print(any(type(f).__name__ == '
                    '"OpenMMLabStartupHook" for f in sys.meta_path))',
                    MOE_SEG_PLUGIN_STARTUP='0')
    assert result.stdout.split() == ['False']


def test_mmseg_apis_import_without_the_plugin():
    code = ('from mmseg.apis import init_model, inference_model\n'
            'import mmcv.ops, sys\n'
            'print(getattr(mmcv.ops, "IS_MOE_SEG_FALLBACK", False),'
            ' "moe_seg_plugin" in sys.modules)')
    result = _fresh(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [str(LITE), 'False']


@pytest.mark.skipif(not LITE, reason='full mmcv imports without the hook')
def test_without_the_hook_mmseg_apis_fail_on_mmcv_lite():
    result = _fresh('from mmseg.apis import init_model',
                    MOE_SEG_PLUGIN_STARTUP='0')
    assert result.returncode != 0
    assert "No module named 'mmcv._ext'" in result.stderr


def test_a_stock_config_loader_reads_plugin_configs(tmp_path):
    user = tmp_path / 'user_config.py'
    user.write_text("_base_ = 'moe_seg_plugin::enet/"
                    "patchmoe_enet_1xb4-1k_street-cityscapes-256x256.py'\n"
                    'train_cfg = dict(max_iters=7)\n')
    code = ('from mmengine.config import Config\n'
            f'cfg = Config.fromfile({str(user)!r}, '
            'import_custom_modules=False)\n'
            'import sys\n'
            'print(cfg.model.decode_head.type, cfg.train_cfg.max_iters, '
            '"moe_seg_plugin" in sys.modules)')
    result = _fresh(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ['PatchMoEHead', '7', 'False']


def test_full_mmcv_is_left_alone(monkeypatch):
    hook = moe_seg_plugin_startup.OpenMMLabStartupHook()
    monkeypatch.setattr(moe_seg_plugin_startup, '_compiled_mmcv_ops_exist',
                        lambda: True)
    assert hook.find_spec('mmcv.ops', None) is None
    monkeypatch.setattr(moe_seg_plugin_startup, '_compiled_mmcv_ops_exist',
                        lambda: False)
    spec = hook.find_spec('mmcv.ops', None)
    assert isinstance(spec.loader, moe_seg_plugin_startup._FallbackOpsLoader)


def test_other_imports_are_not_touched():
    hook = moe_seg_plugin_startup.OpenMMLabStartupHook()
    assert hook.find_spec('json', None) is None
    assert hook.find_spec('mmcv.cnn', None) is None


def test_install_adds_one_hook_only():
    before = [f for f in sys.meta_path
              if isinstance(f, moe_seg_plugin_startup.OpenMMLabStartupHook)]
    assert moe_seg_plugin_startup.install() is True
    assert moe_seg_plugin_startup.install() is True
    after = [f for f in sys.meta_path
             if isinstance(f, moe_seg_plugin_startup.OpenMMLabStartupHook)]
    assert len(after) == max(1, len(before))


@pytest.mark.parametrize('value,expected', [('0', False), ('off', False),
                                            ('False', False), ('1', True),
                                            ('', True)])
def test_enabled_reads_the_variable(monkeypatch, value, expected):
    monkeypatch.setenv(moe_seg_plugin_startup.DISABLE_ENV, value)
    assert moe_seg_plugin_startup.enabled() is expected
