"""Refusals of evaluation/model_latency.py, before any model is built."""
import pytest

from moe_seg_plugin.evaluation.model_latency import (config_latency,
                                                     model_configs)

MOE = 'configs/erfnet/patchmoe_erfnet_fcn_1xb4-1k_street-cityscapes-256x256.py'


def test_a_baseline_checkpoint_needs_a_baseline():
    with pytest.raises(ValueError, match='--baseline-checkpoint'):
        model_configs(MOE, baseline_checkpoint='stock.pth')


def test_a_missing_checkpoint_is_named(tmp_path):
    missing = str(tmp_path / 'absent.pth')
    with pytest.raises(FileNotFoundError, match='absent.pth'):
        model_configs(MOE, missing)


def test_derived_stock_model_is_the_baseline():
    from moe_seg_plugin.models.stock import count_moe_wrappers
    configs = model_configs(MOE, vs_stock=True)
    assert list(configs) == ['model', 'stock']
    assert count_moe_wrappers(configs['model'][0].model) == 1
    assert count_moe_wrappers(configs['stock'][0].model) == 0
    assert configs['stock'][1] is None


def test_round_counts_are_checked_first():
    with pytest.raises(ValueError, match='--repeats'):
        config_latency({}, (8, 8), warmup=0, repeats=0)
