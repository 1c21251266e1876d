"""tools/benchmarks/benchmark_moe_layer.py on a tiny sweep: figures, tables, errors."""
import importlib.util
import json
import os.path as osp

import pytest

TOOL = osp.join(osp.dirname(__file__), '..', '..', 'tools', 'benchmarks',
                'benchmark_moe_layer.py')


@pytest.fixture
def tool(monkeypatch):
    # The tool sets OMP_WAIT_POLICY if unset; keep this process's as is.
    monkeypatch.setenv('OMP_WAIT_POLICY', 'PASSIVE')
    spec = importlib.util.spec_from_file_location('benchmark_moe_layer',
                                                  TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_sweep_writes_tables_and_figures(tool, tmp_path, capsys):
    out = tmp_path / 'layer.json'
    code = tool.main([
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
        assert [(r['experts'], r['top_k']) for r in rows] == [(2, 1), (2, 2),
                                                             (4, 1), (4, 2)]
        for r in rows:
            assert r['moe_ms'] > 0 and r['dense_ms'] > 0
            assert r['naive_over_moe'] == pytest.approx(
                r['naive_ms'] / r['moe_ms'])
    printed = capsys.readouterr().out
    assert '### erfnet: `decode_head.convs.0`' in printed
    # N=8 and N=32 were not run: the targets say so instead of guessing.
    assert 'moe/dense at N=8, k=2 (<= 2.5; merged, low-rank <= 1.2)' in printed
    assert printed.count('not measured') == 2 * 3  # both modes


def test_naive_over_budget_is_skipped_and_marked(tool, tmp_path):
    out = tmp_path / 'layer.md'
    assert tool.main([
        '--archs', 'enet', '--shape', '64', '128', '--experts', '2',
        '--top-k', '1', '--modes', 'forward', '--repeats', '1',
        '--threads', '1', '--naive-budget', '0', '--out', str(out)
    ]) == 0
    text = out.read_text()
    assert '| forward (eval) | 2 | 1 |' in text and 'skipped' in text


def test_bad_options_get_one_line_errors(tool, capsys):
    assert tool.main(['--archs', 'segformer']) == 2
    assert "--archs: unknown ['segformer']" in capsys.readouterr().err
    assert tool.main(['--top-k', '4', '--experts', '2']) == 2
    assert '--top-k' in capsys.readouterr().err
    assert tool.main(['--out', 'table.txt']) == 2
    assert '.md or .json' in capsys.readouterr().err
    assert tool.main(['--dispatches', 'views', 'gathered']) == 2
    assert "--dispatches: unknown ['gathered']" in capsys.readouterr().err


def test_each_dispatch_gets_its_rows_and_targets(tool, tmp_path, capsys):
    out = tmp_path / 'layer.json'
    assert tool.main([
        '--archs', 'erfnet', '--shape', '64', '128', '--experts', '2',
        '--top-k', '2', '--modes', 'forward', '--repeats', '1',
        '--threads', '1', '--dispatches', 'views', 'indexed',
        '--out', str(out)
    ]) == 0
    (result, ) = json.loads(out.read_text())['results']
    rows = result['modes']['forward']
    assert [r['dispatch'] for r in rows] == ['views', 'indexed']
    printed = capsys.readouterr().out
    assert '| forward (eval) | 2 | 2 | module | views |' in printed
    assert '| erfnet | forward (eval) | module | indexed |' in printed


def test_each_scope_gets_its_rows_where_the_module_supports_it(
        tool, tmp_path, capsys):
    out = tmp_path / 'layer.json'
    assert tool.main([
        '--archs', 'erfnet', 'deeplabv3plus', '--shape', '64', '128',
        '--experts', '2', '--top-k', '2', '--modes', 'forward', '--repeats',
        '1', '--threads', '1', '--scopes', 'module', 'conv', 'lowrank4',
        '--out', str(out)
    ]) == 0
    erfnet, deeplab = json.loads(out.read_text())['results']
    assert [r['scope'] for r in erfnet['modes']['forward']] == [
        'module', 'conv', 'lowrank4']
    assert [r['scope'] for r in deeplab['modes']['forward']] == ['module']
    assert 'has 2 convolutions' in deeplab['unsupported']['conv']
    printed = capsys.readouterr().out
    assert '| erfnet | forward (eval) | conv | auto |' in printed
    assert 'conv scope not timed: ' in printed
    assert 'has 2 convolutions' in deeplab['unsupported']['lowrank4']
    for bad in ('merged', 'lowrank0', 'lowrank'):
        assert tool.main(['--scopes', bad]) == 2
        assert f"--scopes: unknown ['{bad}']" in capsys.readouterr().err


def test_low_rank_scope_names_give_the_layer_settings(tool):
    assert tool.scope_settings('lowrank32') == dict(expert_scope='conv',
                                                    expert_rank=32)
    assert tool.scope_settings('conv') == dict(expert_scope='conv')


def test_the_merged_target_is_tighter(tool):
    rows = [dict(experts=8, top_k=2, dense_ms=20.0, moe_ms=26.0,
                 moe_over_dense=1.3, scope=scope)
            for scope in ('module', 'conv', 'lowrank16')]
    assert tool.over_dense(rows[:1]) == '1.30 PASS'
    assert tool.over_dense(rows[1:2]) == '1.30 FAIL'
    assert tool.over_dense(rows[2:]) == '1.30 FAIL'


@pytest.mark.parametrize('dense_ms,moe_ms,want', [
    (20.0, 49.0, '2.45 PASS'), (20.0, 52.0, '2.60 FAIL'),
    (4.0, 16.0, '4.00 (dense < 10 ms)')])
def test_moe_over_dense_target_applies_from_10_ms(tool, dense_ms, moe_ms,
                                                  want):
    rows = [dict(experts=8, top_k=2, dense_ms=dense_ms, moe_ms=moe_ms,
                 moe_over_dense=moe_ms / dense_ms)]
    assert tool.over_dense(rows) == want
    assert tool.over_dense(rows[:0]) == 'not measured'
