"""The ``cuda`` probe on a real GPU (skipped without one): OOM caught, memory recovered."""

from __future__ import annotations

import pytest
import torch

from helpers.models import SHORT, WORKLOAD
from padless.batchsize.cuda import CudaProbe
from padless.batchsize.search import SearchConfig, search
from padless.batchsize.simulate import SimulateProbe
from padless.batchsize.workload import StepConfig

pytestmark = pytest.mark.gpu
GiB = 1 << 30


def test_out_of_memory_is_caught_and_memory_recovered() -> None:
    probe = CudaProbe(WORKLOAD, StepConfig("bf16"), budget_bytes=2 * GiB)
    static = torch.cuda.memory_allocated()
    assert not probe.measure(SHORT, 100_000).fits  # far beyond 2 GiB
    assert torch.cuda.memory_allocated() == static  # nothing of the failed step survives
    ok = probe.measure(SHORT, 4)
    assert ok.fits and ok.peak_bytes is not None and ok.peak_bytes <= 2 * GiB
    assert probe.last_peak_allocated is not None and probe.last_peak_allocated <= ok.peak_bytes
    assert torch.cuda.memory_allocated() == static


def test_simulated_sizes_close_to_real_ones() -> None:
    step = StepConfig("bf16")
    with SimulateProbe(WORKLOAD, step, 2 * GiB) as sim:
        simulated = search([SHORT], sim, SearchConfig()).buckets[0].max_fitting
    real = search([SHORT], CudaProbe(WORKLOAD, step, 2 * GiB), SearchConfig()).buckets[0]
    assert abs(simulated / real.max_fitting - 1) < 0.15
