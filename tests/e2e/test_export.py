"""tools/export.py: a MoE segmentor to ONNX with its routing kept."""
import subprocess
import sys

import pytest
import torch

from .conftest import MOE_CONFIG, ROOT

pytestmark = pytest.mark.slow

SHAPE = ['--shape', '64', '128']


def _run(args, expect=0):
    result = subprocess.run([sys.executable, 'tools/export.py'] + args,
                            cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == expect, (result.stdout[-3000:] +
                                         result.stderr[-3000:])
    return result


@pytest.fixture(scope='module')
def routed_checkpoint(tmp_path_factory) -> str:
    """The ERFNet MoE street model with gates whose logits vary from patch
    to patch, as a trained gate's do (a fresh one sends every patch the
    same way): larger gate weights, the gate's norm calibrated on the
    tool's probe inputs. Saved as MMSeg saves checkpoints."""
    from moe_seg_plugin.engine import load_config
    from moe_seg_plugin.evaluation.flops import inference_model
    from moe_seg_plugin.evaluation.onnx_export import probe_inputs
    from moe_seg_plugin.moe import PatchConvMoE
    torch.manual_seed(0)
    model = inference_model(load_config(str(ROOT / MOE_CONFIG)))
    norms = []
    for layer in model.modules():
        if isinstance(layer, PatchConvMoE):
            for module in layer.gate.modules():
                if isinstance(module, torch.nn.Conv2d):
                    torch.nn.init.normal_(module.weight, std=3.0)
                elif isinstance(module, torch.nn.BatchNorm2d):
                    module.reset_running_stats()
                    module.momentum = None  # the plain average
                    norms.append(module.train())
    with torch.no_grad():
        for x in probe_inputs((64, 128)):
            model(x, mode='tensor')
    for norm in norms:
        norm.eval()
    path = tmp_path_factory.mktemp('export') / 'routed.pth'
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return str(path)


def test_onnx_keeps_routing_and_equals_pytorch(routed_checkpoint, tmp_path):
    out = tmp_path / 'moe.onnx'
    printed = _run([MOE_CONFIG, routed_checkpoint, '--format', 'onnx'] +
                   SHAPE + ['--out', str(out), '--capacity-factor', '1.0',
                            '--compare-stock', '--runs', '2']).stdout
    assert out.is_file() and (tmp_path / 'moe_stock.onnx').is_file()
    diffs = printed.split('max abs diff per input: ')[1].split('\n')[0]
    assert len(diffs.split(', ')) == 3
    assert all(float(d) <= 1e-4 for d in diffs.split(', '))
    layers = [line for line in printed.splitlines()
              if line.startswith('MoE layer ')]
    assert layers
    for line in layers:
        assert 'routing differs between inputs: yes' in line
        # Capacity factor 1: N * ceil(T * k / N) windows for T * k choices.
        computed = int(line.split('computes ')[1].split(' windows')[0])
        chosen = int(line.split(' for ')[1].split(' choices')[0])
        assert chosen <= computed < chosen + 8
    assert 'MoE / stock' in printed


def test_without_capacity_factor_a_layer_has_room_for_every_choice():
    """No --capacity-factor: a layer keeps its own factor, or gets N / k
    (nothing dropped: the default dispatch's output); a given factor
    overrides both."""
    from moe_seg_plugin.evaluation.onnx_export import plan_capacity
    from moe_seg_plugin.moe import PatchConvMoE
    own = PatchConvMoE(torch.nn.Conv2d(2, 2, 3, padding=1), num_experts=6,
                       top_k=2, capacity_factor=1.5)
    model = torch.nn.Sequential(
        PatchConvMoE(torch.nn.Conv2d(2, 2, 3, padding=1), num_experts=8,
                     top_k=2), own)
    plans = plan_capacity(model, None)
    assert [(p.path, p.capacity_factor) for p in plans] == [('0', 4.0),
                                                            ('1', 1.5)]
    model[0].eval()
    with torch.no_grad():
        model[0](torch.randn(2, 2, 9, 9))
    assert model[0].last_routing.kept.all()
    assert [p.capacity_factor for p in plan_capacity(model, 1.25)] == [
        1.25, 1.25]


@pytest.mark.parametrize('args, message', [
    (['missing.pth'], "checkpoint 'missing.pth' does not exist"),
    (['none', '--capacity-factor', '0'], '--capacity-factor must be > 0'),
    (['none', '--shape', '0', '64'], '--shape'),
])
def test_bad_arguments_get_one_line(args, message):
    result = _run([MOE_CONFIG] + args, expect=2)
    assert message in result.stderr
    assert 'Traceback' not in result.stderr


def test_missing_extra_names_it(monkeypatch):
    import importlib.util

    from moe_seg_plugin.engine.errors import SetupError
    from moe_seg_plugin.evaluation import onnx_export
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, 'find_spec',
        lambda name, *a: None if name == 'onnxscript' else real(name, *a))
    with pytest.raises(SetupError, match=r'\.\[export\].*onnxscript'):
        onnx_export.require_export_extra()
