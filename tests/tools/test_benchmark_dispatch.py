"""tools/benchmarks/benchmark_dispatch.py on a tiny harness: its table and
counts."""
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]

TINY = ['--shape', '12', '24', '--channels', '8', '--batch', '1',
        '--repeats', '1']


def test_table_has_a_row_per_mode_and_a_column_per_layer(tool, capsys):
    assert tool('benchmark_dispatch').main(
        TINY + ['--experts', '2', '4', '--capacity-factor', '1.0', '--old',
                str(ROOT)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('Machine: cpu; ')
    header = next(line for line in lines if line.startswith('| N |'))
    assert 'new ratio' in header and 'capacity ratio' in header
    assert 'old ratio' in header
    rows = [line for line in lines if line.startswith('| 2 ') or
            line.startswith('| 4 ')]
    assert [row.split(' | ')[1] for row in rows] == ['forward', 'fwd+bwd'] * 2
    for row in rows:
        cells = [float(cell) for cell in row.strip('| ').split(' | ')[2:]]
        dense, timings, ratios = cells[0], cells[1::2], cells[2::2]
        assert len(ratios) == 3 and all(r > 0 for r in ratios)
        for ms, ratio in zip(timings, ratios):  # rounded to 0.1 ms
            assert abs(ms / ratio - dense) <= 0.06 + 0.05 / ratio


def test_autocast_is_in_the_header(tool, capsys):
    assert tool('benchmark_dispatch').main(
        TINY + ['--experts', '2', '--autocast', 'bfloat16']) == 0
    out = capsys.readouterr().out
    assert 'spread routing, bfloat16 autocast;' in out
    assert out.count('| 2 | ') == 2


def test_counts_the_functions_of_one_training_step(tool, capsys):
    assert tool('benchmark_dispatch').main(TINY + ['--count-functions']) == 0
    out = capsys.readouterr().out
    functions = int(out.split(' calls ')[1].split(' functions')[0])
    classes = int(out.split(' functions of ')[1].split(' classes')[0])
    # The dispatch's budget (issue 24): at most 25 functions; the classes
    # are the layer, its layout, gate and loss (two) and the autograd
    # Function cutting windows (the predecessor's step called 57 functions
    # of 8 classes).
    assert functions <= 25 and classes <= 5
