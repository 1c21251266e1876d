"""tools/benchmarks/benchmark_moe_layer.py on a tiny sweep: figures,
tables, errors (the library's pieces: tests/evaluation/
test_layer_benchmark.py)."""
import json

import pytest


@pytest.fixture
def layer_tool(tool, monkeypatch):
    # The tool sets OMP_WAIT_POLICY if unset; keep this process's as is.
    monkeypatch.setenv('OMP_WAIT_POLICY', 'PASSIVE')
    return tool('benchmark_moe_layer')


def test_tiny_sweep_writes_tables_and_figures(layer_tool, tmp_path, capsys):
    out = tmp_path / 'layer.json'
    code = layer_tool.main([
        '--archs', 'erfnet', '--shape', '64', '128', '--experts', '2', '4',
        '--top-k', '1', '2', '--repeats', '1', '--threads', '1',
        '--out', str(out)
    ])
    assert code == 0
    data = json.loads(out.read_text())
    (result, ) = data['results']
    assert result['path'] == 'decode_head.convs.0'
    assert result['input_shape'] == [1, 16, 32, 64]
    assert set(result['modes']) == {'forward', 'backward'}
    for rows in result['modes'].values():
        assert [(r['experts'], r['top_k']) for r in rows] == [
            (2, 1), (2, 2), (4, 1), (4, 2)]
        for r in rows:
            assert r['moe_ms'] > 0 and r['dense_ms'] > 0
            assert r['naive_over_moe'] == pytest.approx(
                r['naive_ms'] / r['moe_ms'])
    assert data['meta']['machine']['device'] == 'cpu'
    printed = capsys.readouterr().out
    assert 0 < printed.index('\nMachine: cpu; ') < printed.index('### erfnet')
    assert '### erfnet: `decode_head.convs.0`' in printed
    # N=8 and N=32 were not run: the targets say so instead of guessing.
    assert 'moe/dense at N=8, k=2 (<= 2.5; merged, low-rank <= 1.2)' in printed
    assert printed.count('not measured') == 2 * 3  # both modes


def test_naive_over_budget_is_skipped_and_marked(layer_tool, tmp_path):
    out = tmp_path / 'layer.md'
    assert layer_tool.main([
        '--archs', 'enet', '--shape', '64', '128', '--experts', '2',
        '--top-k', '1', '--modes', 'forward', '--repeats', '1',
        '--threads', '1', '--naive-budget', '0', '--out', str(out)
    ]) == 0
    text = out.read_text()
    assert text.startswith('Machine: cpu; ')
    assert '| forward (eval) | 2 | 1 |' in text and 'skipped' in text


def test_bad_options_get_one_line_errors(layer_tool, capsys):
    assert layer_tool.main(['--archs', 'segformer']) == 2
    assert "--archs: unknown ['segformer']" in capsys.readouterr().err
    assert layer_tool.main(['--top-k', '4', '--experts', '2']) == 2
    assert '--top-k' in capsys.readouterr().err
    assert layer_tool.main(['--out', 'table.txt']) == 2
    assert '.md or .json' in capsys.readouterr().err
    assert layer_tool.main(['--dispatches', 'views', 'gathered']) == 2
    assert "--dispatches: unknown ['gathered']" in capsys.readouterr().err
    for bad in ('merged', 'lowrank0', 'lowrank'):
        assert layer_tool.main(['--scopes', bad]) == 2
        assert f"--scopes: unknown ['{bad}']" in capsys.readouterr().err


def test_each_dispatch_and_scope_gets_its_rows_where_supported(
        layer_tool, tmp_path, capsys):
    out = tmp_path / 'layer.json'
    assert layer_tool.main([
        '--archs', 'erfnet', 'deeplabv3plus', '--shape', '64', '128',
        '--experts', '2', '--top-k', '2', '--modes', 'forward', '--repeats',
        '1', '--threads', '1', '--scopes', 'module', 'conv', 'lowrank4',
        '--dispatches', 'views', 'indexed', '--out', str(out)
    ]) == 0
    erfnet, deeplab = json.loads(out.read_text())['results']
    assert [(r['scope'], r['dispatch'])
            for r in erfnet['modes']['forward']] == [
        (scope, how) for scope in ('module', 'conv', 'lowrank4')
        for how in ('views', 'indexed')]
    assert [r['scope'] for r in deeplab['modes']['forward']] == ['module'] * 2
    assert 'has 2 convolutions' in deeplab['unsupported']['conv']
    assert 'has 2 convolutions' in deeplab['unsupported']['lowrank4']
    printed = capsys.readouterr().out
    assert '| forward (eval) | 2 | 2 | module | views |' in printed
    assert '| erfnet | forward (eval) | module | indexed |' in printed
    assert '| erfnet | forward (eval) | conv | views |' in printed
    assert 'conv scope not timed: ' in printed
