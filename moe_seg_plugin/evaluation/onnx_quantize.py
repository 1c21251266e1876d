"""INT8 static post-training quantization of an exported graph
(onnxruntime's quantization tools), and what it does to the routing.

:func:`quantize_int8` calibrates activation ranges on given images
(min/max) and stores weights as signed 8-bit integers (per output
channel) and activations as unsigned ones (the U8S8 pairing that x86 CPUs'
integer kernels take) in the QDQ format: QuantizeLinear / DequantizeLinear
pairs that onnxruntime fuses into integer kernels. The gates' top-k
choices stay integer indices; :func:`with_routing_outputs` makes them graph
outputs so that :func:`routing_change` can count the patches whose chosen
experts differ between two graphs.
"""
import contextlib
import logging
import os
import os.path as osp
import tempfile
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
from torch import Tensor

#: What the quantized graph's weights and activations are.
QUANT_SETTINGS = ('QDQ, per-channel int8 weights, uint8 activations, '
                  'min/max calibration')


def with_routing_outputs(model):
    """A copy of an ONNX model whose gates' top-k indices are outputs too.

    Args:
        model (onnx.ModelProto): An exported graph.

    Returns:
        tuple: The copy, and the names of the added outputs (one per TopK
        node, in graph order: one per MoE layer).
    """
    import onnx
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    names = [node.output[1] for node in copy.graph.node
             if node.op_type == 'TopK']
    known = {output.name for output in copy.graph.output}
    # Their types and shapes as ONNX's shape inference gives them.
    inferred = {
        info.name: info
        for info in onnx.shape_inference.infer_shapes(copy).graph.value_info
    }
    for name in names:
        if name not in known:
            copy.graph.output.append(
                inferred.get(name) or onnx.helper.make_tensor_value_info(
                    name, onnx.TensorProto.INT64, None))
    return copy, names


def without_outputs(model, names: Sequence[str]):
    """A copy of an ONNX model without the outputs ``names`` (the
    deployable graph once the routing was checked)."""
    import onnx
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    kept = [output for output in copy.graph.output
            if output.name not in set(names)]
    del copy.graph.output[:]
    copy.graph.output.extend(kept)
    return copy


class _Calibration:
    """onnxruntime's calibration reader over a list of images."""

    def __init__(self, input_name: str, images: Sequence[Tensor]) -> None:
        self.feeds = iter([{input_name: image.cpu().numpy()}
                           for image in images])

    def get_next(self):
        return next(self.feeds, None)

    def rewind(self) -> None:  # read once
        pass


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def quantize_int8(model, out: str, images: Sequence[Tensor]):
    """Quantize ``model`` statically, calibrated on ``images``.

    Args:
        model (onnx.ModelProto): The FP32 graph (extra outputs are kept).
        out (str): Where the INT8 graph is written.
        images (list[Tensor]): Calibration inputs (1, 3, H, W).

    Returns:
        onnx.ModelProto: The INT8 graph (as written).
    """
    import onnx
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    if not images:
        raise ValueError('quantize_int8: no calibration images')
    with tempfile.TemporaryDirectory() as tmp:
        source = osp.join(tmp, 'fp32.onnx')
        prepared = osp.join(tmp, 'prepared.onnx')
        onnx.save(model, source)
        # Shape inference and graph optimisation first, as onnxruntime
        # recommends for static quantization.
        quant_pre_process(source, prepared, skip_symbolic_shape=True)
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        with _quiet_root_logger():  # a warning per 1-d weight (norms)
            quantize_static(prepared, out,
                            _Calibration(model.graph.input[0].name, images),
                            quant_format=QuantFormat.QDQ,
                            per_channel=True,
                            activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
    return onnx.load(out)


def routing_change(reference, other, names: Sequence[str],
                   images: Sequence[Tensor]) -> List[float]:
    """Per TopK output: the share of patches whose set of chosen experts
    differs between two sessions, over ``images``.

    Args:
        reference, other (onnxruntime.InferenceSession): Sessions of graphs
            with the routing outputs ``names``.
        names (list[str]): The routing outputs.
        images (list[Tensor]): Inputs (1, 3, H, W).

    Returns:
        list[float]: One share per name.
    """
    changed = np.zeros(len(names))
    total = np.zeros(len(names))
    input_name = reference.get_inputs()[0].name
    for image in images:
        feed = {input_name: image.cpu().numpy()}
        want = reference.run(list(names), feed)
        got = other.run(list(names), feed)
        for index, (a, b) in enumerate(zip(want, got)):
            a = np.sort(a.reshape(-1, a.shape[-1]), axis=-1)
            b = np.sort(b.reshape(-1, b.shape[-1]), axis=-1)
            changed[index] += (a != b).any(axis=-1).sum()
            total[index] += a.shape[0]
    return [float(c / t) for c, t in zip(changed, total)]


def quantize_and_check(path: str, calibration: Sequence[Tensor],
                       test_images: Sequence[Tensor],
                       threads: Optional[int] = None) -> Tuple[object, dict]:
    """Quantize an exported graph and compare it with its FP32 self on
    test images.

    Args:
        path (str): The FP32 graph; the INT8 one is written beside it as
            ``*_int8.onnx`` (without the routing outputs).
        calibration (list[Tensor]): Calibration inputs (1, 3, H, W).
        test_images (list[Tensor]): Inputs to compare on (not the
            calibration ones).
        threads (int, optional): onnxruntime's intra-op threads.

    Returns:
        tuple: The INT8 graph's session, and a dict: ``onnx`` (its path),
        ``max_abs_diff`` (largest logit difference from FP32),
        ``class_changed`` (share of logit pixels whose top class differs),
        ``routing_changed`` (per TopK, :func:`routing_change`) and
        ``test_images`` (their count).
    """
    import onnx

    from .onnx_export import cpu_session
    routed, names = with_routing_outputs(onnx.load(path))
    out = osp.splitext(path)[0] + '_int8.onnx'
    quantized = quantize_int8(routed, out, calibration)
    onnx.save(without_outputs(quantized, names), out)
    fp32, int8 = cpu_session(path, threads), cpu_session(out, threads)
    name = int8.get_inputs()[0].name
    diff, changed, pixels = 0.0, 0, 0
    for x in test_images:
        feed = {name: x.cpu().numpy()}
        want, got = fp32.run(None, feed)[0], int8.run(None, feed)[0]
        diff = max(diff, float(np.abs(got - want).max()))
        changed += int((got.argmax(1) != want.argmax(1)).sum())
        pixels += want.shape[0] * want.shape[2] * want.shape[3]
    routing = routing_change(cpu_session(routed, threads),
                             cpu_session(quantized, threads), names,
                             test_images) if names else []
    return int8, dict(onnx=out, max_abs_diff=diff,
                      class_changed=changed / max(pixels, 1),
                      routing_changed=routing, test_images=len(test_images))


__all__ = [
    'QUANT_SETTINGS', 'with_routing_outputs', 'without_outputs',
    'quantize_int8', 'routing_change', 'quantize_and_check'
]
