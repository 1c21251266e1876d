"""tools/benchmarks/benchmark_architectures.py on ERFNet (and ENet) at a
small input, in-process: the pair table, the floor table, the family
table, and its refusals."""
import json

import pytest

SMALL = ['--shape', '64', '128', '--threads', '1']


def _table_rows(text: str, first: str) -> list:
    return [line for line in text.splitlines() if line.startswith(first)]


def test_architecture_table(tool, tmp_path, capsys):
    table, figures = tmp_path / 'table.md', tmp_path / 'table.json'
    assert tool('benchmark_architectures').main(
        ['--archs', 'erfnet', '--warmup', '0', '--repeats', '2', '--out',
         str(table), '--json', str(figures)] + SMALL) == 0
    summary = json.loads(figures.read_text())
    (result, ) = summary['results']
    text = table.read_text()
    assert text.startswith('Machine: cpu; ')
    assert summary['machine']['threads'] == 1
    (row, ) = _table_rows(text, '| erfnet |')
    cells = [cell.strip() for cell in row.split('|')[1:-1]]
    assert cells[1] == f"{result['stock']['params'] / 1e6:.3f}"
    assert cells[3] == f"{result['increase_pct']['params_pct']:+.2f}"
    assert cells[-1].rstrip(' *') == f"{result['ratio']:.3f}"
    assert result['ratio'] == pytest.approx(
        result['latency']['moe']['median_ms'] /
        result['latency']['stock']['median_ms'])
    assert capsys.readouterr().out.strip() == text.strip()


def test_the_tool_prints_the_floor_table(tool, capsys):
    assert tool('benchmark_architectures').main(
        ['--floor', '--archs', 'erfnet', '--warmup', '0', '--repeats', '1']
        + SMALL) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('Machine: cpu; ')
    assert lines[2].startswith('| architecture (layer) | s eval | floor eval')
    assert lines[4].startswith('| erfnet (`decode_head.convs.0`) | ')
    cells = [cell.strip() for cell in lines[4].split('|')[2:-1]]
    assert len(cells) == 8
    for mode in (cells[:4], cells[4:]):  # s, floor, ratio, excess
        share, floor, ratio, excess = map(float, mode)
        assert floor == pytest.approx(1 + share, abs=1.5e-3)  # k = 2
        assert excess == pytest.approx(ratio - floor, abs=1.5e-3)


def test_family_table_rows_and_the_values_an_arch_cannot_have(
        tool, tmp_path, capsys):
    """--family formulation: each value beside the stock model, in the same
    rounds; ENet's conv-scope values named with the reason, once."""
    figures = tmp_path / 'family.json'
    assert tool('benchmark_architectures').main(
        ['--family', 'formulation', '--archs', 'erfnet', 'enet', '--warmup',
         '0', '--repeats', '1', '--json', str(figures)] + SMALL) == 0
    printed = capsys.readouterr().out
    erfnet, enet = json.loads(figures.read_text())['results']
    assert list(erfnet['figures']) == [
        'stock', 'module', 'merged', 'lowrank32', 'lowrank16']
    assert list(erfnet['latency']) == list(erfnet['figures'])
    params = {k: v['params'] for k, v in erfnet['figures'].items()}
    assert (params['lowrank16'] < params['lowrank32'] < params['merged'] <
            params['module'])
    assert list(enet['figures']) == ['stock', 'module']
    (note, ) = _table_rows(printed, 'enet: ')
    assert note.startswith(
        "enet: merged, lowrank32, lowrank16 not run: expert_scope='conv'")
    (row, ) = _table_rows(printed, '| erfnet | lowrank16 |')
    latency = erfnet['latency']
    ratio = latency['lowrank16']['median_ms'] / latency['stock']['median_ms']
    assert row.endswith(f'{ratio:.3f} |')


@pytest.mark.parametrize('argv,message', [
    (['--values', 'merged'], '--values needs --family'),
    (['--floor', '--family', 'formulation'], '--family and --floor'),
    (['--repeats', '0'], '--repeats >= 1')])
def test_bad_options_are_one_line(tool, capsys, argv, message):
    assert tool('benchmark_architectures').main(argv) == 2
    assert message in capsys.readouterr().err
