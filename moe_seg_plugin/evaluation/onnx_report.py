"""The figures of a deployment check (:func:`.onnx_deploy.deploy`) as the
lines ``tools/deployment/export.py`` prints: per model the export and its
check against PyTorch, per MoE layer how the graph computes it, the INT8
graphs, the latencies and the test-set metrics."""
from typing import List

from .onnx_quantize import QUANT_SETTINGS

#: Largest max abs difference between onnxruntime and PyTorch accepted.
MAX_ABS_DIFF = 1e-4


def layer_line(layer: dict, check: dict) -> str:
    """One MoE layer: what the graph computes, whether the probe inputs
    route differently and the dropped share per input.

    Args:
        layer (dict): A capacity plan as a dict (``path``,
            ``capacity_factor``, ``computed``, ``chosen``).
        check (dict): The MoE model's ``check_export`` result.

    Returns:
        str: The line.
    """
    path = layer['path']
    differ = 'yes' if check['routes_differ'].get(path) else 'no'
    if layer['capacity_factor'] is None:
        how = (f"merged kernels, the graph convolves each of the "
               f"{layer['computed']} patch windows once for "
               f"{layer['chosen']} choices")
    else:
        how = (f"capacity factor {layer['capacity_factor']:g}, the graph "
               f"computes {layer['computed']} windows for "
               f"{layer['chosen']} choices")
    dropped = ', '.join(f'{d[path]:.3f}' for d in check['dropped_share'])
    return (f'MoE layer {path}: {how}; routing differs between inputs: '
            f'{differ}; dropped share per input: {dropped}')


def int8_lines(key: str, int8: dict, result: dict) -> List[str]:
    """One model's INT8 graph: its file, its difference from FP32 and,
    for the MoE model, the routing change per layer.

    Args:
        key (str): 'MoE' or 'stock'.
        int8 (dict): The model's ``quantize_and_check`` figures.
        result (dict): The whole result (``calib``, ``layers``).

    Returns:
        list[str]: The lines.
    """
    lines = [
        f"{key}: INT8 ({QUANT_SETTINGS}; {result['calib']} training "
        f"images) at {int8['onnx']}; against FP32 on "
        f"{int8['test_images']} test images: max abs logit diff "
        f"{int8['max_abs_diff']:.2e}, top class changed at "
        f"{100 * int8['class_changed']:.2f}% of the logit pixels"
    ]
    layers = result['layers'] if key == 'MoE' else []
    for layer, share in zip(layers, int8['routing_changed']):
        lines.append(
            f"{key}: INT8 changes the top-k of {100 * share:.1f}% of "
            f"the patches of {layer['path']} ({int8['test_images']} "
            'test images)')
    return lines


def model_lines(key: str, done: dict, result: dict) -> List[str]:
    """One model: where it went, its check and its INT8 graph.

    Args:
        key (str): 'MoE' or 'stock'.
        done (dict): The model's ``export_model`` result.
        result (dict): The whole result.

    Returns:
        list[str]: The lines.
    """
    height, width = result['shape']
    check = done['check']
    lines = [
        f"{key}: exported {result['config']} at 1x3x{height}x{width} "
        f"to {done['onnx']}" if key == 'MoE' else
        f"{key}: exported to {done['onnx']}",
        f'{key}: onnxruntime vs PyTorch, max abs diff per input: ' +
        ', '.join(f'{d:.2e}' for d in check['max_abs_diff'])
    ]
    if key == 'MoE':
        lines += [layer_line(layer, check) for layer in result['layers']]
    if done['int8']:
        lines += int8_lines(key, done['int8'], result)
    return lines


def latency_lines(latency: dict) -> List[str]:
    """Every median latency, then MoE / stock per onnxruntime precision
    where both were timed."""
    lines = ['latency (median, CPU, alternating rounds): ' + ', '.join(
        f'{name} {ms:.1f} ms' for name, ms in latency.items())]
    for precision in ('FP32', 'INT8'):
        moe, stock = (latency.get(f'{key} ONNX {precision}')
                      for key in ('MoE', 'stock'))
        if moe and stock:
            lines.append(f'MoE / stock, onnxruntime {precision}: '
                         f'{moe / stock:.2f}')
    return lines


def eval_lines(result: dict) -> List[str]:
    """The test-set metrics as a Markdown table (a blank line first), and
    a note when the stock model was exported but not evaluated."""
    lines = ['', '| graph | mIoU | aAcc |', '|---|---|---|']
    lines += [
        f"| {name} | {metrics.get('mIoU', float('nan')):.2f} | "
        f"{metrics.get('aAcc', float('nan')):.2f} |"
        for name, metrics in result['eval'].items()
    ]
    if 'stock' in result['models'] and not any(
            name.startswith('stock') for name in result['eval']):
        lines.append('(stock model: fresh weights, not evaluated; give '
                     '--stock-checkpoint)')
    return lines


def deployment_report(result: dict) -> str:
    """The figures of :func:`.onnx_deploy.deploy` as lines.

    Args:
        result (dict): ``deploy``'s result.

    Returns:
        str: The report, lines joined by newlines.
    """
    lines = []
    for key, done in result['models'].items():
        lines += model_lines(key, done, result)
    lines += latency_lines(result['latency'])
    if result.get('eval'):
        lines += eval_lines(result)
    return '\n'.join(lines)


def worst_abs_diff(result: dict) -> float:
    """The largest max abs difference between onnxruntime and PyTorch
    over every model and probe input of ``deploy``'s result."""
    return max(max(done['check']['max_abs_diff'])
               for done in result['models'].values())


__all__ = [
    'MAX_ABS_DIFF', 'deployment_report', 'layer_line', 'int8_lines',
    'model_lines', 'latency_lines', 'eval_lines', 'worst_abs_diff'
]
