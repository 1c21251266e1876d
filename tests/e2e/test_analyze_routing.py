"""tools/analysis_tools/analyze_routing.py on generated data and a fresh
checkpoint: its files, and numbers that can be known (forced expert,
consistency with the hook's log and the test metrics)."""
import json
import os
import subprocess
import sys

import pytest

from street_runs import MOE_CONFIG, ROOT, fast_options  # noqa: I100

pytestmark = pytest.mark.slow
LAYER = 'decode_head.convs.0'


def _analyse(street_root, checkpoint, work, *extra, launch=()):
    result = subprocess.run(
        [sys.executable, *launch, 'tools/analysis_tools/analyze_routing.py',
         MOE_CONFIG, checkpoint, '--work-dir', str(work), *extra,
         '--cfg-options'] + fast_options(street_root), cwd=ROOT,
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, (result.stdout[-3000:] +
                                    result.stderr[-3000:])
    return result


@pytest.fixture(scope='module')
def gated(street_root, fresh_checkpoint, tmp_path_factory):
    """The report of one gated run: (work dir, stdout)."""
    work = tmp_path_factory.mktemp('analysis')
    return work, _analyse(street_root, fresh_checkpoint, work).stdout


def test_report_files_and_numbers(gated):
    work, stdout = gated
    out = work / 'routing_analysis'
    assert 'routing report: 4 files' in stdout
    names = {p.name for p in out.iterdir()}
    assert names == {
        'routing_stats.json', 'summary.md', f'usage_{LAYER}.png',
        f'expert_given_class_{LAYER}.png'
    }
    for png in out.glob('*.png'):
        assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
        assert png.stat().st_size > 5000

    report = json.loads((out / 'routing_stats.json').read_text())
    assert report['images'] == 2 and report['forced_expert'] is None
    assert set(report['metrics']) >= {'mIoU', 'aAcc', 'mAcc'}
    stats = report['layers'][LAYER]
    assert stats['patches'] == 2 * 9  # 2 images, 3x3 grid
    assert sum(stats['usage']) == pytest.approx(1.0)
    assert 0 <= stats['usage_entropy'] <= 1
    assert 0 <= stats['gate_entropy'] <= 1
    assert len(report['classes']) == 19
    # Every labelled pixel of the 2 scenes of 64x128 counts once.
    assert 0.9 * 2 * 64 * 128 < sum(stats['class_pixels']) <= 2 * 64 * 128
    for pixels, row in zip(stats['class_pixels'],
                           stats['expert_given_class']):
        assert sum(row) == pytest.approx(1.0 if pixels else 0.0)

    # The hook's own log in the work dir holds the same test statistics.
    logged = [json.loads(line) for line in
              (work / 'routing_stats.json').read_text().splitlines()]
    assert [e['mode'] for e in logged] == ['test']
    assert logged[0]['layers'][LAYER] == stats

    summary = (out / 'summary.md').read_text()
    assert f'| mIoU | {report["metrics"]["mIoU"]:.4f} |' in summary
    assert (f'| usage entropy H(f)/log N (1 balanced, 0 collapsed) | '
            f'{stats["usage_entropy"]:.4f} |') in summary
    assert f'![usage of {LAYER}](usage_{LAYER}.png)' in summary


def test_two_processes_sum_their_counts(gated, street_root,
                                        fresh_checkpoint, tmp_path):
    # Each of the 2 ranks tests one of the 2 images; the report must hold
    # the statistics of both, as the single-process run does.
    _analyse(street_root, fresh_checkpoint, tmp_path, '--launcher', 'pytorch',
             launch=('-m', 'torch.distributed.run', '--nproc_per_node=2',
                     '--master_port=29541'))
    single = json.loads((gated[0] / 'routing_analysis' /
                         'routing_stats.json').read_text())['layers'][LAYER]
    report = json.loads((tmp_path / 'routing_analysis' /
                         'routing_stats.json').read_text())
    stats = report['layers'][LAYER]
    assert stats['patches'] == single['patches'] == 18
    assert stats['class_pixels'] == single['class_pixels']
    assert stats['usage'] == pytest.approx(single['usage'])
    assert stats['gate_entropy'] == pytest.approx(single['gate_entropy'])


def test_forced_expert_takes_all_usage(street_root, fresh_checkpoint,
                                       tmp_path):
    out = tmp_path / 'report'
    _analyse(street_root, fresh_checkpoint, tmp_path / 'work', '--out-dir',
             str(out), '--force-expert', '5')
    report = json.loads((out / 'routing_stats.json').read_text())
    stats = report['layers'][LAYER]
    assert report['forced_expert'] == 5
    assert stats['usage'] == [0.0] * 5 + [1.0] + [0.0] * 2
    assert stats['usage_entropy'] == pytest.approx(0.0, abs=1e-9)
    assert stats['dominant_expert'] == 5
    assert stats['dead_experts'] == [0, 1, 2, 3, 4, 6, 7]
    for pixels, row in zip(stats['class_pixels'],
                           stats['expert_given_class']):
        if pixels:
            assert row[5] == 1.0
    assert 'every patch forced to expert 5' in (out / 'summary.md').read_text()


def _main(tool, argv, capsys):
    code = tool('analyze_routing').main(argv)
    return code, capsys.readouterr()


def test_help_and_clear_errors(tool, street_root, fresh_checkpoint, tmp_path,
                               capsys):
    with pytest.raises(SystemExit) as done:
        _main(tool, ['--help'], capsys)
    assert done.value.code == 0
    assert '--force-expert' in capsys.readouterr().out

    code, seen = _main(tool, [MOE_CONFIG, str(tmp_path / 'absent.pth')],
                       capsys)
    assert code == 2
    assert 'absent.pth' in seen.err and 'Traceback' not in seen.err

    options = ['--cfg-options'] + fast_options(street_root)
    code, seen = _main(tool, [MOE_CONFIG, fresh_checkpoint, '--work-dir',
                              str(tmp_path), '--force-expert', '8'] +
                       options, capsys)
    assert code == 2
    assert '--force-expert 8' in seen.err and '0 to 7' in seen.err

    stock = MOE_CONFIG.replace('patchmoe_', '')
    code, seen = _main(tool, [stock, fresh_checkpoint, '--work-dir',
                              str(tmp_path)] + options, capsys)
    assert code == 2 and 'no PatchConvMoE layer' in seen.err
