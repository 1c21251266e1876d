"""tools/deployment/export.py: a MoE segmentor to ONNX with its routing
kept."""
import subprocess
import sys

import pytest
import torch

from street_runs import MOE_CONFIG, ROOT  # noqa: I100

pytestmark = pytest.mark.slow

SHAPE = ['--shape', '64', '128']


def _run(args, expect=0):
    result = subprocess.run(
        [sys.executable, 'tools/deployment/export.py'] + args, cwd=ROOT,
        capture_output=True, text=True, timeout=600)
    assert result.returncode == expect, (result.stdout[-3000:] +
                                         result.stderr[-3000:])
    return result


def save_routed_checkpoint(path, options=None) -> str:
    """The ERFNet MoE street model (``options`` merged into its config)
    with gates whose logits vary from patch to patch, as a trained gate's
    do (a fresh one sends every patch the same way): larger gate weights,
    the gate's norm calibrated on the tool's probe inputs. Saved as MMSeg
    saves checkpoints."""
    from moe_seg_plugin.engine import load_config
    from moe_seg_plugin.evaluation.flops import inference_model
    from moe_seg_plugin.evaluation.onnx_export import probe_inputs
    from moe_seg_plugin.moe import PatchConvMoE
    torch.manual_seed(0)
    model = inference_model(load_config(str(ROOT / MOE_CONFIG), options))
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
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return str(path)


@pytest.fixture(scope='module')
def routed_checkpoint(tmp_path_factory) -> str:
    return save_routed_checkpoint(
        tmp_path_factory.mktemp('export') / 'routed.pth')


#: The deployment formulations: the config settings of each.
MERGED = {'model.decode_head.moe.expert_scope': 'conv'}
LOW_RANK = dict(MERGED, **{'model.decode_head.moe.expert_rank': 8})


def cfg_options(options: dict) -> list:
    """``options`` as --cfg-options arguments."""
    return [f'{key}={value}' for key, value in options.items()]


@pytest.mark.parametrize('options', [MERGED, LOW_RANK],
                         ids=['merged', 'low-rank'])
def test_merged_and_low_rank_export_routing_per_patch(options, tmp_path):
    """Merged kernels export without capacity: the graph convolves each
    patch window once with the kernels the input chose, and equals
    PyTorch on inputs that route differently."""
    checkpoint = save_routed_checkpoint(tmp_path / 'routed.pth', options)
    printed = _run([MOE_CONFIG, checkpoint] + SHAPE + [
        '--out', str(tmp_path / 'moe.onnx'), '--runs', '1',
        '--cfg-options'] + cfg_options(options)).stdout
    diffs = printed.split('max abs diff per input: ')[1].split('\n')[0]
    assert all(float(d) <= 1e-4 for d in diffs.split(', '))
    (line, ) = [line for line in printed.splitlines()
                if line.startswith('MoE layer ')]
    assert 'merged kernels' in line and 'capacity' not in line
    assert 'routing differs between inputs: yes' in line
    # 3x3 patches, top-2: 9 windows convolved for 18 choices.
    assert 'each of the 9 patch windows once for 18 choices' in line


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
    (['none', '--eval'], '--eval needs a CHECKPOINT'),
    (['none', '--int8', '--calib', '0'], '--calib must be >= 1'),
    (['none', '--stock-checkpoint', 'x.pth'], "--stock-checkpoint 'x.pth'"),
    (['none', '--threads', '0'], '--threads must be >= 1'),
])
def test_bad_arguments_get_one_line(tool, args, message, tmp_path,
                                    monkeypatch, capsys):
    """Refused before anything is built or written (in-process)."""
    monkeypatch.chdir(tmp_path)
    assert tool('export').main([str(ROOT / MOE_CONFIG)] + args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert 'Traceback' not in err
    assert not list(tmp_path.iterdir())


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


def test_int8_and_eval_beside_fp32_and_pytorch(street_root, tmp_path):
    """--int8 --eval: each model's graphs on the test set with IoUMetric
    (PyTorch, ONNX FP32, ONNX INT8), the INT8 graphs written, the routing
    change under INT8 counted, all latencies printed."""
    from moe_seg_plugin.engine import load_config
    from moe_seg_plugin.evaluation.flops import inference_model
    from moe_seg_plugin.models.stock import stock_config

    from street_runs import fast_options  # noqa: I100
    checkpoint = save_routed_checkpoint(tmp_path / 'routed.pth', MERGED)
    torch.manual_seed(1)
    stock_model = inference_model(
        stock_config(load_config(str(ROOT / MOE_CONFIG))))
    stock = tmp_path / 'stock.pth'
    torch.save(dict(state_dict=stock_model.state_dict(), meta={}), stock)
    out = tmp_path / 'moe.onnx'
    printed = _run([
        MOE_CONFIG, checkpoint, '--out', str(out), '--compare-stock',
        '--stock-checkpoint', str(stock), '--int8', '--calib', '2', '--eval',
        '--runs', '1', '--cfg-options'
    ] + cfg_options(MERGED) + fast_options(street_root)).stdout
    for name in ('moe_int8.onnx', 'moe_stock_int8.onnx'):
        assert (tmp_path / name).is_file()
    # The test set's size (128x64 images): no --shape needed.
    assert 'at 1x3x64x128 to' in printed
    assert 'MoE: INT8 (QDQ' in printed and 'stock: INT8 (QDQ' in printed
    assert 'against FP32 on 2 test images: max abs logit diff ' in printed
    assert '% of the logit pixels' in printed
    (change, ) = [line for line in printed.splitlines()
                  if 'INT8 changes the top-k of' in line]
    share = float(change.split('top-k of ')[1].split('%')[0])
    assert 0.0 <= share <= 100.0 and '(2 test images)' in change
    rows = {
        line.split(' | ')[0].strip('| '): line.split(' | ')[1:]
        for line in printed.splitlines() if line.startswith('| ')
        and not line.startswith('| graph')
    }
    assert list(rows) == [
        'MoE PyTorch', 'MoE ONNX FP32', 'MoE ONNX INT8', 'stock PyTorch',
        'stock ONNX FP32', 'stock ONNX INT8'
    ]
    for model in ('MoE', 'stock'):  # FP32 graph = PyTorch on the test set
        assert rows[f'{model} ONNX FP32'] == rows[f'{model} PyTorch']
    latency = [line for line in printed.splitlines()
               if line.startswith('latency')][0]
    for name in ('MoE ONNX FP32', 'MoE ONNX INT8', 'stock ONNX INT8',
                 'MoE PyTorch'):
        assert name in latency
    assert 'MoE / stock, onnxruntime INT8: ' in printed
