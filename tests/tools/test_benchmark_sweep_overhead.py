"""tools/benchmarks/benchmark_sweep_overhead.py: its table from known
timings (the sweep's rows replaced by hand-written ones)."""
from moe_seg_plugin.evaluation import sweep_overhead

ROWS = [dict(run_id='a', status='done',
             seconds=dict(wall=130.0, train=100.0, test=10.0)),
        dict(run_id='b', status='done',
             seconds=dict(wall=75.0, train=50.0, test=5.0))]


def test_a_row_per_run_and_the_median_share(tool, monkeypatch, capsys):
    monkeypatch.setattr(
        sweep_overhead, 'sweep_overheads',
        lambda folder: sweep_overhead.overhead_rows(ROWS))
    assert tool('benchmark_sweep_overhead').main(['sweeps/x']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == '| a | 130.0 | 100.0 | 10.0 | 20.0 | 20.0 % |'
    assert lines[3] == '| b | 75.0 | 50.0 | 5.0 | 20.0 | 40.0 % |'
    assert lines[4] == ("median overhead: 30.0 % of a run's training time "
                        '(2 runs)')


def test_no_timed_run_says_so(tool, monkeypatch, capsys):
    monkeypatch.setattr(sweep_overhead, 'sweep_overheads', lambda folder: [])
    assert tool('benchmark_sweep_overhead').main(['sweeps/x']) == 1
    assert 'no finished run with timings' in capsys.readouterr().out
