"""export.py's deployment check without a graph: the report lines of its
figures, the latency calls and the graphs it evaluates (onnx_report,
onnx_deploy)."""
import numpy as np
import pytest
import torch

from moe_seg_plugin.evaluation import onnx_deploy
from moe_seg_plugin.evaluation.onnx_report import (MAX_ABS_DIFF,
                                                   deployment_report,
                                                   worst_abs_diff)

LAYER = 'decode_head.convs.0'
INT8 = ('INT8 (QDQ, per-channel int8 weights, uint8 activations, min/max '
        'calibration; 2 training images)')


def _result() -> dict:
    """Figures of a MoE model (a merged layer and a capacity one) and its
    stock model, both quantized, the MoE model evaluated."""
    return dict(
        config='c.py', shape=[64, 128], calib=2,
        layers=[dict(path=LAYER, capacity_factor=None, computed=9,
                     chosen=18),
                dict(path='x', capacity_factor=1.5, computed=12, chosen=18)],
        models={
            'MoE': dict(
                onnx='m.onnx',
                check=dict(max_abs_diff=[1e-6, 2e-6],
                           routes_differ={LAYER: True},
                           dropped_share=[{LAYER: 0.0, 'x': 0.1},
                                          {LAYER: 0.0, 'x': 0.2}]),
                int8=dict(onnx='m_int8.onnx', test_images=2,
                          max_abs_diff=0.5, class_changed=0.01,
                          routing_changed=[0.25, 0.5])),
            'stock': dict(
                onnx='m_stock.onnx',
                check=dict(max_abs_diff=[3e-6], routes_differ={},
                           dropped_share=[{}]),
                int8=dict(onnx='m_stock_int8.onnx', test_images=2,
                          max_abs_diff=0.1, class_changed=0.0,
                          routing_changed=[]))
        },
        latency={'MoE ONNX FP32': 2.0, 'MoE ONNX INT8': 1.0,
                 'stock ONNX FP32': 1.0, 'stock ONNX INT8': 0.5,
                 'MoE PyTorch': 3.0},
        eval={'MoE PyTorch': {'mIoU': 41.0, 'aAcc': 90.0},
              'MoE ONNX FP32': {'mIoU': 41.0}})


def test_the_report_lines():
    assert deployment_report(_result()).splitlines() == [
        'MoE: exported c.py at 1x3x64x128 to m.onnx',
        'MoE: onnxruntime vs PyTorch, max abs diff per input: 1.00e-06, '
        '2.00e-06',
        f'MoE layer {LAYER}: merged kernels, the graph convolves each of '
        'the 9 patch windows once for 18 choices; routing differs between '
        'inputs: yes; dropped share per input: 0.000, 0.000',
        'MoE layer x: capacity factor 1.5, the graph computes 12 windows '
        'for 18 choices; routing differs between inputs: no; dropped share '
        'per input: 0.100, 0.200',
        f'MoE: {INT8} at m_int8.onnx; against FP32 on 2 test images: max '
        'abs logit diff 5.00e-01, top class changed at 1.00% of the logit '
        'pixels',
        f'MoE: INT8 changes the top-k of 25.0% of the patches of {LAYER} '
        '(2 test images)',
        'MoE: INT8 changes the top-k of 50.0% of the patches of x (2 test '
        'images)',
        'stock: exported to m_stock.onnx',
        'stock: onnxruntime vs PyTorch, max abs diff per input: 3.00e-06',
        f'stock: {INT8} at m_stock_int8.onnx; against FP32 on 2 test '
        'images: max abs logit diff 1.00e-01, top class changed at 0.00% '
        'of the logit pixels',
        'latency (median, CPU, alternating rounds): MoE ONNX FP32 2.0 ms, '
        'MoE ONNX INT8 1.0 ms, stock ONNX FP32 1.0 ms, stock ONNX INT8 '
        '0.5 ms, MoE PyTorch 3.0 ms',
        'MoE / stock, onnxruntime FP32: 2.00',
        'MoE / stock, onnxruntime INT8: 2.00',
        '',
        '| graph | mIoU | aAcc |',
        '|---|---|---|',
        '| MoE PyTorch | 41.00 | 90.00 |',
        '| MoE ONNX FP32 | 41.00 | nan |',
        '(stock model: fresh weights, not evaluated; give '
        '--stock-checkpoint)',
    ]


def test_without_eval_int8_or_stock_those_lines_are_left_out():
    result = _result()
    del result['models']['stock'], result['eval']
    result['models']['MoE']['int8'] = None
    result['latency'] = {'MoE ONNX FP32': 2.0, 'MoE PyTorch': 3.0}
    lines = deployment_report(result).splitlines()
    assert len(lines) == 5
    assert lines[-1].startswith('latency (median, CPU, alternating rounds)')


def test_the_worst_difference_over_models_and_inputs():
    result = _result()
    assert worst_abs_diff(result) == 3e-6 < MAX_ABS_DIFF
    result['models']['MoE']['check']['max_abs_diff'][1] = 0.5
    assert worst_abs_diff(result) == 0.5


class _Input:
    name = 'image'


class _Session:
    """An onnxruntime session stand-in recording its feeds."""

    def __init__(self):
        self.feeds = []

    def get_inputs(self):
        return [_Input()]

    def run(self, names, feed):
        self.feeds.append(feed)
        return [np.zeros(1)]


def test_every_graph_and_the_eager_model_are_timed():
    sessions = [_Session() for _ in range(3)]
    exported = {'MoE': dict(sessions=dict(fp32=sessions[0],
                                          int8=sessions[1])),
                'stock': dict(sessions=dict(fp32=sessions[2]))}
    calls = []
    models = {'MoE': (lambda x: calls.append(x.shape), 'm.onnx')}
    x = torch.zeros(1, 3, 4, 4)
    times = onnx_deploy.time_graphs(models, exported, x, runs=2)
    assert list(times) == ['MoE ONNX FP32', 'MoE ONNX INT8',
                           'stock ONNX FP32', 'MoE PyTorch']
    assert all(value >= 0 for value in times.values())
    assert calls and calls[0] == (1, 3, 4, 4)
    assert all(list(s.feeds[0]) == ['image'] for s in sessions)


@pytest.mark.parametrize('stock_checkpoint, names', [
    (None, ['MoE PyTorch', 'MoE ONNX FP32']),
    ('stock.pth', ['MoE PyTorch', 'MoE ONNX FP32', 'stock PyTorch',
                   'stock ONNX FP32']),
])
def test_the_stock_model_is_evaluated_with_its_checkpoint_only(
        monkeypatch, stock_checkpoint, names):
    from moe_seg_plugin.evaluation import onnx_eval
    seen = {}
    monkeypatch.setattr(onnx_eval, 'test_runner',
                        lambda cfg, work_dir: seen.setdefault('dir',
                                                              work_dir))
    monkeypatch.setattr(
        onnx_eval, 'evaluate_graphs',
        lambda runner, graphs, shape: {name: {} for name in graphs})
    job = onnx_deploy.Deployment(config='c.py', shape=(4, 4),
                                 out='out/m.onnx',
                                 stock_checkpoint=stock_checkpoint)
    exported = {key: dict(sessions=dict(fp32=_Session()))
                for key in ('MoE', 'stock')}
    models = {key: (torch.nn.Identity(), f'{key}.onnx')
              for key in ('MoE', 'stock')}
    metrics = onnx_deploy.evaluate_exported(None, models, exported, job)
    assert list(metrics) == names
    assert seen['dir'] == 'out/m_eval'


def test_files_and_images_of_a_job():
    job = onnx_deploy.Deployment(config='c.py', shape=(4, 4),
                                 out='work/m.onnx')
    assert onnx_deploy.stock_onnx_path(job.out) == 'work/m_stock.onnx'
    assert onnx_deploy.quantization_images(None, job) == ([], [])
    assert job.runs == 5 and job.calib == 32
