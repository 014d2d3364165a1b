"""Model tests share two CPU cores with other suites: one torch thread each, fixed seeds."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _torch_determinism() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
