"""Inference tests: the speech fixtures come from `helpers.speech`; every test starts from the
same torch seed."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
