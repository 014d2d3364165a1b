"""The simulator on a small real AEDModel: exact replays, CUDA emulation, agreement with the CPU.

The model is a genuine padless `AEDModel` (FastConformer + Transformer decoder + CE loss), only
narrow and shallow, so that a simulated step takes about a second and a real one a few.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

from helpers.models import LONG, SHORT, WORKLOAD, small_config
from padless.batchsize.cpu import CpuProbe
from padless.batchsize.cuda_emulation import cuda_step
from padless.batchsize.search import SearchConfig, search
from padless.batchsize.simulate import SimulateConfig, SimulateProbe
from padless.batchsize.tracker import MemoryTracker
from padless.batchsize.workload import (
    StepConfig,
    make_optimizer,
    training_step,
)

MiB = 1 << 20


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_replay_equals_a_direct_simulated_step(target: str) -> None:
    """A trace recorded at batch 2 (and 3) replays a step at another size byte for byte."""
    probe = SimulateProbe(WORKLOAD, StepConfig("bf16"), 1 << 40, SimulateConfig(target=target))
    with probe:
        for shape in (LONG, SHORT):  # LONG is the reference; SHORT derives from it
            for n in (5, 11):
                replay, direct = probe.replay(shape, n), probe.direct(shape, n)
                assert replay == direct, (shape, n)
        # LONG took two steps (exact pair), SHORT one (reference), plus four direct checks.
        assert probe.steps_simulated == 3 + 4


def test_fake_accounting_equals_real_tensors() -> None:
    """The same step on real CPU tensors: the tracker sees the same peak as under fake ones."""
    step = StepConfig("fp32")
    peaks = []
    for fake in (True, False):
        torch.manual_seed(0)
        tracker = MemoryTracker()
        context = FakeTensorMode() if fake else torch.device("cpu")
        with context, tracker:
            model = WORKLOAD.build(step)
            optimizer = make_optimizer(model, step)
            batch = WORKLOAD.batch(LONG, 4, torch.device("cpu"))
            tracker.reset_peak()
            training_step(
                model, optimizer, batch, WORKLOAD.loss, lambda: torch.autocast("cpu", enabled=False)
            )
        peaks.append(tracker.peak_bytes)
    assert peaks[0] == peaks[1]


def test_simulated_peak_matches_measured_rss() -> None:
    """simulate (cpu target, fp32) vs the cpu probe's peak RSS of a fresh process: within 10%."""
    step = StepConfig("fp32")
    sim = SimulateProbe(WORKLOAD, step, 1 << 40, SimulateConfig(target="cpu"))
    cpu = CpuProbe(WORKLOAD, step, 1 << 40)
    with sim:
        for shape, n in ((LONG, 24), (SHORT, 48)):
            simulated = sim.measure(shape, n).peak_bytes
            measured = cpu.measure(shape, n).peak_bytes
            assert simulated is not None and measured is not None
            assert simulated > 40 * MiB  # large enough for RSS noise to be small
            assert abs(measured / simulated - 1) < 0.10, (shape, n, simulated, measured)


def test_search_with_real_cpu_steps_chooses_sizes_that_fit() -> None:
    """The search against real CPU steps (fresh processes) of the small model, 2 buckets."""
    budget = 96 * MiB
    probe = CpuProbe(WORKLOAD, StepConfig("fp32"), budget)
    result = search([LONG, SHORT], probe, SearchConfig(tolerance=0.1))
    for bucket in result.buckets:
        assert bucket.max_fitting >= 2 and bucket.upper is not None
        fits = [m.batch_size for m in bucket.trials if m.fits]
        fails = [m.batch_size for m in bucket.trials if not m.fits]
        assert max(fits, default=0) <= bucket.max_fitting < bucket.upper <= min(fails)
        # The chosen size ran for real (during the search or as the verification trial), and
        # its measured peak is within the budget.
        (chosen,) = {m for m in bucket.trials if m.batch_size == bucket.batch_size}
        assert chosen.fits and chosen.peak_bytes is not None and chosen.peak_bytes <= budget
    assert result.buckets[0].max_fitting <= result.buckets[1].max_fitting  # LONG <= SHORT


def test_cuda_emulation_follows_cuda_autocast_and_kernels() -> None:
    with FakeTensorMode():
        linear, norm = torch.nn.Linear(64, 64), torch.nn.LayerNorm(64)
        x = torch.randn(2, 40, 64)
        with cuda_step(torch.bfloat16) as kernels:
            h = linear(x)
            assert h.dtype == torch.bfloat16  # matmuls in bf16
            assert norm(h).dtype == torch.float32  # layer norm in fp32 on CUDA (bf16 on CPU)
            assert torch.softmax(h, -1).dtype == torch.float32
            logits = linear(norm(h)).flatten(0, 1)
            loss = F.cross_entropy(logits, torch.zeros(80, dtype=torch.long))
            assert loss.dtype == torch.float32  # log_softmax + nll_loss in fp32
            q = h.view(2, 40, 4, 16).transpose(1, 2)
            bias = torch.randn(2, 4, 40, 40, requires_grad=True)
            F.scaled_dot_product_attention(q, q, q, attn_mask=bias)
            F.scaled_dot_product_attention(q, q, q, is_causal=True)
            odd = torch.randn(2, 4, 40, 44, dtype=torch.bfloat16)  # head dim 44: flash pads
            assert F.scaled_dot_product_attention(odd, odd, odd).shape == odd.shape
            dropped = F.dropout(h, 0.1, training=True)
            assert type(dropped.grad_fn).__name__ == "NativeDropoutBackward0"  # 1-byte mask
        assert kernels.backends == {"efficient": 1, "flash": 2}
    # PyTorch's own CPU autocast is back after the context: layer norm follows its input.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (
            torch.nn.LayerNorm(8)(torch.nn.Linear(8, 8)(torch.randn(2, 8))).dtype == torch.bfloat16
        )


def test_bf16_autocast_saves_memory_and_allocator_adds_reserve() -> None:
    """bf16 autocast needs less than fp32; reserved memory is at least the allocated bytes."""
    peaks = {}
    for precision in ("fp32", "bf16"):
        probe = SimulateProbe(WORKLOAD, StepConfig(precision), 1 << 40)  # type: ignore[arg-type]
        with probe:
            peaks[precision] = probe.replay(LONG, 32)
    assert peaks["bf16"].peak_live < peaks["fp32"].peak_live
    for r in peaks.values():
        assert r.peak_live <= r.peak_allocated <= r.peak_reserved
        assert r.peak_phase in ("forward", "backward", "optimizer")


def test_workload_from_config_round_trips() -> None:
    config = small_config()
    assert WORKLOAD.model_config() == config
    assert dataclasses.replace(config, name="x") != config
