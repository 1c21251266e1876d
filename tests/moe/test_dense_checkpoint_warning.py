"""A stock (dense) checkpoint loaded into a MoE layer with fresh experts
(``expert_init='random'``) is said as a WARNING naming the layer and both
choices, at WARNING level in MMEngine's log too; upcycling stays INFO."""
import logging

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.runner import load_checkpoint, save_checkpoint
from torch import nn

import moe_seg_plugin  # noqa: F401  (routes the core's log to MMEngine's)
from moe_seg_plugin.moe import PatchConvMoE


def _dense() -> nn.Module:
    return nn.Sequential(nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 3, padding=1))


def _moe(expert_init: str) -> nn.Module:
    model = _dense()
    model[1] = PatchConvMoE(model[1], num_experts=2, top_k=1,
                            expert_init=expert_init)
    return model


def _layer_records(caplog) -> list:
    return [r for r in caplog.records
            if r.name == 'moe_seg_plugin' and "PatchConvMoE '1'" in
            r.getMessage()]


def test_fresh_experts_from_a_dense_state_dict_warn(caplog):
    with caplog.at_level(logging.INFO, logger='moe_seg_plugin'):
        _moe('random').load_state_dict(_dense().state_dict(), strict=False)
    (record, ) = _layer_records(caplog)
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert message.startswith(
        "PatchConvMoE '1': the checkpoint holds the dense layer's weights "
        "(bias, weight); with expert_init='random' they are not used")
    assert "keep expert_init='random'" in message
    assert "set expert_init='copy' to upcycle" in message


def test_upcycling_stays_info(caplog):
    with caplog.at_level(logging.INFO, logger='moe_seg_plugin'):
        _moe('copy').load_state_dict(_dense().state_dict(), strict=False)
    (record, ) = _layer_records(caplog)
    assert record.levelno == logging.INFO
    assert 'upcycled' in record.getMessage()


@pytest.mark.parametrize('expert_init,level', [('random', 'WARNING'),
                                               ('copy', 'INFO')])
def test_runner_style_load_logs_at_that_level(tmp_path, expert_init, level):
    """``load_checkpoint`` (what the Runner's ``load_from`` calls): the
    message reaches MMEngine's log file at its level."""
    log_file = tmp_path / 'run.log'
    MMLogger.get_instance(f'dense_{expert_init}', log_file=str(log_file))
    path = str(tmp_path / 'dense.pth')
    dense = _dense()
    save_checkpoint(dense.state_dict(), path)
    model = _moe(expert_init)
    load_checkpoint(model, path, map_location='cpu')
    lines = [line for line in log_file.read_text().splitlines()
             if "PatchConvMoE '1'" in line]
    assert len(lines) == 1
    assert f' - {level} - ' in lines[0]
    if expert_init == 'random':
        assert "expert_init='copy'" in lines[0]
    assert torch.equal(model[0].weight, dense[0].weight)
