"""Shared test fixtures: import the plugin first (as configs do)."""
import pytest
import torch

import moe_seg_plugin  # noqa: F401  (compat layer + registrations)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
