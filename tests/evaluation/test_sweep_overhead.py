"""A sweep's overhead per run (evaluation/sweep_overhead.py)."""
import pytest

from moe_seg_plugin.evaluation.sweep_overhead import (Overhead, median_share,
                                                      overhead_rows)

ROWS = [
    dict(run_id='a', status='done',
         seconds=dict(wall=130.0, train=100.0, test=10.0)),
    dict(run_id='b', status='done',
         seconds=dict(wall=75.0, train=50.0, test=5.0)),
    dict(run_id='c', status='failed',
         seconds=dict(wall=9.0, train=1.0, test=1.0)),
    dict(run_id='d', status='done', seconds=dict(train=1.0, test=1.0)),
    dict(run_id='e', status='done',
         seconds=dict(wall=44.0, train=40.0, test=2.0)),
]


def test_overhead_is_wall_minus_train_and_test_of_finished_runs():
    rows = overhead_rows(ROWS)
    assert rows[0] == Overhead('a', 130.0, 100.0, 10.0, 20.0, 0.2)
    assert [row.run_id for row in rows] == ['a', 'b', 'e']
    assert [row.overhead for row in rows] == [20.0, 20.0, 2.0]
    assert median_share(rows) == pytest.approx(0.2)  # of .2, .4, .05
