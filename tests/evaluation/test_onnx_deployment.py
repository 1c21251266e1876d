"""The pieces of export.py's --int8 and --eval: routing outputs, the routing
change count, graphs standing in for encode_decode."""
import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip('onnx')


class _Input:
    name = 'image'


class _Session:
    """An onnxruntime session stand-in that returns fixed routing outputs."""

    def __init__(self, outputs):
        self.outputs = outputs

    def get_inputs(self):
        return [_Input()]

    def run(self, names, feed):
        return [np.asarray(self.outputs[name]) for name in names]


def test_routing_change_counts_patches_whose_expert_set_differs():
    from moe_seg_plugin.evaluation.onnx_quantize import routing_change
    reference = _Session({'a': [[0, 1], [2, 3], [4, 5], [6, 7]],
                          'b': [[0, 1], [0, 1]]})
    # Patch 0 only reordered (same set), patch 1 one expert changed, patch 3
    # both; layer b unchanged.
    other = _Session({'a': [[1, 0], [2, 4], [4, 5], [1, 2]],
                      'b': [[1, 0], [0, 1]]})
    image = torch.zeros(1, 3, 4, 4)
    assert routing_change(reference, other, ['a', 'b'],
                          [image, image]) == [0.5, 0.0]


def _topk_model():
    import onnx
    from onnx import TensorProto, helper
    nodes = [
        helper.make_node('Constant', [], ['k'],
                         value=helper.make_tensor('kv', TensorProto.INT64,
                                                  [1], [2])),
        helper.make_node('TopK', ['x', 'k'], ['values', 'indices']),
        helper.make_node('ReduceSum', ['values'], ['y'], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, 'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT,
                                                   [3, 5])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [])])
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid('', 17)]), onnx


def test_routing_outputs_added_and_removed_without_touching_the_model():
    from moe_seg_plugin.evaluation.onnx_quantize import (with_routing_outputs,
                                                         without_outputs)
    model, onnx = _topk_model()
    routed, names = with_routing_outputs(model)
    assert names == ['indices']
    assert [o.name for o in routed.graph.output] == ['y', 'indices']
    assert [o.name for o in model.graph.output] == ['y']
    onnx.checker.check_model(routed)
    assert [o.name for o in without_outputs(routed, names).graph.output] == [
        'y'
    ]
    ort = pytest.importorskip('onnxruntime')
    session = ort.InferenceSession(routed.SerializeToString(),
                                   providers=['CPUExecutionProvider'])
    x = np.array([[0, 5, 1, 4, 2]] * 3, dtype=np.float32)
    _, indices = session.run(None, {'x': x})
    assert indices.tolist() == [[1, 3]] * 3


class _Head(nn.Module):
    align_corners = False

    def predict_by_feat(self, logits, metas):
        return nn.functional.interpolate(logits, size=metas[0]['img_shape'])


class _Segmentor(nn.Module):

    def __init__(self):
        super().__init__()
        self.decode_head = _Head()

    def encode_decode(self, inputs, metas):
        raise AssertionError('the model ran, not the graph')


def test_graph_runs_image_by_image_at_its_size_and_is_taken_out_after():
    from moe_seg_plugin.evaluation.onnx_eval import graph_inference
    segmentor = _Segmentor()
    seen = []

    def graph(image):
        seen.append(tuple(image.shape))
        return torch.full((1, 4, 2, 3), float(len(seen)))

    inputs = torch.rand(2, 3, 12, 20)
    with graph_inference(segmentor, graph, (8, 16)):
        out = segmentor.encode_decode(inputs, [dict(img_shape=(12, 20))] * 2)
    assert seen == [(1, 3, 8, 16), (1, 3, 8, 16)]  # resized, one by one
    assert out.shape == (2, 4, 12, 20)
    assert out[0].eq(1).all() and out[1].eq(2).all()
    with pytest.raises(AssertionError, match='the model ran'):
        segmentor.encode_decode(inputs, [])
