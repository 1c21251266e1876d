"""The routing report's files: charts per layer, routing_stats.json and the
Markdown summary (analyze_routing.py writes them after its test run)."""
import json

import numpy as np

from moe_seg_plugin.visualization.routing_report import (file_stem,
                                                         markdown_summary,
                                                         report_metrics,
                                                         write_report)

PNG = b'\x89PNG\r\n\x1a\n'


def _stats(**changes) -> dict:
    """The statistics of a layer of 2 experts over 2 classes (``sky``
    absent)."""
    stats = dict(num_experts=2, usage=[0.75, 0.25], importance=[0.6, 0.4],
                 usage_entropy=0.8113, dominant_expert=0,
                 dominant_share=0.75, dead_experts=[], importance_cv2=0.04,
                 gate_entropy=0.9, patches=18, class_pixels=[10, 0],
                 expert_given_class=[[0.1, 0.9], [0.0, 0.0]])
    stats.update(changes)
    return stats


def _run(forced=None) -> dict:
    return dict(config='c.py', checkpoint='k.pth', forced_expert=forced,
                images=2, settings={
                    'head.conv': dict(num_experts=2, top_k=1, grid=[3, 3],
                                      patch_size=None),
                    'other conv': dict(num_experts=2, top_k=2, grid=None,
                                       patch_size=8)
                })


def _result() -> dict:
    without_classes = _stats(dead_experts=[1])
    del without_classes['expert_given_class']
    return dict(classes=['road', 'sky'],
                layers={'head.conv': _stats(),
                        'other conv': without_classes})


def test_metrics_become_floats_or_strings():
    metrics = {'mIoU': np.float32(41.5), 'aAcc': '90', 'note': 'x',
               'none': None}
    assert report_metrics(metrics) == {'mIoU': 41.5, 'aAcc': 90.0,
                                       'note': 'x', 'none': 'None'}
    assert report_metrics(None) == {}


def test_a_layer_path_becomes_a_file_name_part():
    assert file_stem('decode_head.convs.0') == 'decode_head.convs.0'
    assert file_stem('a b/c') == 'a_b_c'


def test_the_report_files(tmp_path):
    out = tmp_path / 'report'
    files = write_report(str(out), _result(), {'mIoU': 41.5}, _run())
    assert files == ['usage_head.conv.png',
                     'expert_given_class_head.conv.png',
                     'usage_other_conv.png', 'routing_stats.json',
                     'summary.md']
    assert sorted(p.name for p in out.iterdir()) == sorted(files)
    for png in out.glob('*.png'):
        assert png.read_bytes()[:8] == PNG
    report = json.loads((out / 'routing_stats.json').read_text())
    assert report['charts'] == {
        'head.conv': dict(usage='usage_head.conv.png',
                          expert_given_class='expert_given_class_'
                          'head.conv.png'),
        'other conv': dict(usage='usage_other_conv.png')
    }
    assert report['metrics'] == {'mIoU': 41.5}
    assert report['classes'] == ['road', 'sky']
    assert report['layers'] == _result()['layers']
    assert (out / 'summary.md').read_text() == markdown_summary(report)


def test_the_summary_lists_run_metrics_statistics_and_classes(tmp_path):
    write_report(str(tmp_path), _result(), {'mIoU': 41.5, 'note': 'x'},
                 _run(forced=1))
    lines = (tmp_path / 'summary.md').read_text().splitlines()
    for line in ('- routing: every patch forced to expert 1',
                 '| mIoU | 41.5000 |', '| note | x |',
                 '2 experts, top-1, grid (3, 3); 18 patches routed.',
                 '2 experts, top-2, patch size 8; 18 patches routed.',
                 '| dead experts (usage < 1/(10N) = 0.0500) | none |',
                 '| dead experts (usage < 1/(10N) = 0.0500) | E1 |',
                 '| E0 | 0.7500 | 0.6000 |',
                 '![usage of head.conv](usage_head.conv.png)',
                 '| road | 10 | E1 | 0.9000 |', '| sky | 0 | - | - |'):
        assert line in lines, line
    # The layer without class statistics has no class table.
    assert lines.count('| class | pixels | top expert | P(top expert \\| '
                       'class) |') == 1
    gated = markdown_summary(dict(_run(), metrics={}, layers={}, charts={},
                                  classes=[]))
    assert '- routing: gated' in gated
