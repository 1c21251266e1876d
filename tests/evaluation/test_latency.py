"""Latency measurement (moe_seg_plugin.evaluation.latency)."""
import time

import pytest
import torch

from moe_seg_plugin.evaluation.latency import (_synchronizer,
                                               compare_latency,
                                               latency_ratio, latency_stats,
                                               measure_latency, median_ms)


class FakeTime:
    """A clock that only moves when a run 'takes' time."""

    def __init__(self):
        self.now = 0.0
        self.calls = []

    def clock(self) -> float:
        return self.now

    def run(self, name: str, costs_ms):
        costs = iter(costs_ms)

        def call():
            self.calls.append(name)
            self.now += next(costs) / 1000

        return call


def test_rounds_alternate_and_warmup_is_untimed():
    fake = FakeTime()
    runs = {'a': fake.run('a', [100, 100, 6, 1, 3]),
            'b': fake.run('b', [100, 100, 2, 4, 1])}
    stats = compare_latency(runs, warmup=2, repeats=3, clock=fake.clock)
    assert fake.calls == ['a', 'b', 'b', 'a', 'a', 'b', 'b', 'a', 'a', 'b']
    assert stats['a']['times_ms'] == pytest.approx([6, 1, 3])
    assert stats['b']['times_ms'] == pytest.approx([2, 4, 1])
    assert stats['a']['median_ms'] == pytest.approx(3)
    assert stats['a']['min_ms'] == pytest.approx(1)
    assert stats['a']['max_ms'] == pytest.approx(6)
    assert stats['a']['mean_ms'] == pytest.approx(10 / 3)
    ratio = latency_ratio(stats, 'a', 'b')
    assert ratio['ratio'] == pytest.approx(3 / 2)  # medians
    assert ratio['paired_ratio'] == pytest.approx(3)  # median of 3, 1/4, 3


def test_three_runs_rotate():
    fake = FakeTime()
    runs = {name: fake.run(name, [1] * 3) for name in 'abc'}
    compare_latency(runs, warmup=0, repeats=3, clock=fake.clock)
    assert ''.join(fake.calls) == 'abcbcacab'


def test_quartiles_and_iqr():
    stats = latency_stats([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (stats['q1_ms'], stats['q3_ms'], stats['iqr_ms']) == (2, 4, 2)
    single = latency_stats([7.0])
    assert single['iqr_ms'] == 0 and single['median_ms'] == 7


def test_real_clock_tells_slow_from_fast():
    stats = compare_latency({'slow': lambda: time.sleep(0.006),
                             'fast': lambda: time.sleep(0.001)},
                            warmup=1, repeats=3)
    assert stats['slow']['min_ms'] >= 6
    assert stats['slow']['median_ms'] > stats['fast']['median_ms']


@pytest.mark.parametrize('kwargs', [dict(repeats=0), dict(warmup=-1)])
def test_bad_counts(kwargs):
    with pytest.raises(ValueError, match='repeats|warmup'):
        compare_latency({'a': lambda: None}, **kwargs)


def test_no_runs():
    with pytest.raises(ValueError, match='at least one'):
        compare_latency({})


def test_gpu_timing_waits_for_the_gpu():
    assert _synchronizer('cuda:0') is torch.cuda.synchronize
    assert _synchronizer(torch.device('cuda')) is torch.cuda.synchronize
    assert _synchronizer('cpu') is not torch.cuda.synchronize


def test_measure_latency_keeps_its_interface():
    result = measure_latency(lambda: time.sleep(0.002), warmup=1, repeats=3)
    assert set(result) == {'median_ms', 'min_ms', 'max_ms'}
    assert result['min_ms'] >= 2


def test_setup_runs_before_every_call_and_is_not_timed():
    fake = FakeTime()
    calls = []

    def setup():
        calls.append('setup')
        fake.now += 50 / 1000  # would show in the timing if timed

    runs = {'a': fake.run('a', [9, 2, 4, 3]),
            'b': fake.run('b', [9, 5, 5, 5])}
    stats = compare_latency(runs, warmup=1, repeats=3, clock=fake.clock,
                            setup={'a': setup})
    assert calls == ['setup'] * 4  # 'a' ran once per round, 4 rounds
    assert stats['a']['times_ms'] == pytest.approx([2, 4, 3])
    assert stats['a']['median_ms'] == pytest.approx(3)
    assert stats['b']['median_ms'] == pytest.approx(5)


def test_median_ms_picks_each_runs_median():
    fake = FakeTime()
    runs = {'a': fake.run('a', [7, 1, 8]), 'b': fake.run('b', [2, 6, 4])}
    stats = compare_latency(runs, warmup=0, repeats=3, clock=fake.clock)
    assert median_ms(stats) == pytest.approx({'a': 7, 'b': 4})


def test_measure_latency_takes_the_median_of_the_timed_calls(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(time, 'perf_counter', fake.clock)
    result = measure_latency(fake.run('a', [50, 3, 9, 1]), warmup=1,
                             repeats=3)
    assert result == pytest.approx(dict(median_ms=3, min_ms=1, max_ms=9))
