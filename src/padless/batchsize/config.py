"""The frozen configs of the batch-size search: the trial step (`StepConfig`), the simulator
(`SimulateConfig`) and one whole run (`OomptimizeConfig`), with the names of their choices.

Free of torch, so that the command line reads its defaults from here without slowing down
``padless --help``; `padless.batchsize.workload` turns a `StepConfig` into dtypes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from padless.batchsize.search import SearchConfig

#: Weights and math of a trial step (`StepConfig.precision`).
Precision = Literal["fp32", "bf16", "bf16-pure"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
#: What the simulator emulates (`SimulateConfig.target`).
Target = Literal["cuda", "cpu"]
TARGETS: tuple[Target, ...] = get_args(Target)
#: How a trial is run (`OomptimizeConfig.probe`): fake tensors, a CPU subprocess, a real GPU.
ProbeName = Literal["simulate", "cpu", "cuda"]
PROBES: tuple[ProbeName, ...] = get_args(ProbeName)


@dataclass(frozen=True)
class StepConfig:
    """What one trial step runs, beyond the model itself."""

    # fp32: fp32 weights and math. bf16: fp32 weights, optimizer state and gradients with bf16
    # autocast around forward + loss (the usual recipe, and Canary's). bf16-pure: the model cast
    # to bf16 (weights, gradients and AdamW state in bf16), no autocast.
    precision: Precision = "bf16"
    # AdamW's multi-tensor ("foreach") update, PyTorch's default on CUDA. It holds one
    # full-size temporary per parameter group during the update; the fused kernel would not.
    foreach: bool = True
    seed: int = 0  # synthetic batch contents (values do not change memory)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")


@dataclass(frozen=True)
class SimulateConfig:
    """What the simulator emulates."""

    # cuda: CUDA autocast, attention kernels, dropout and caching allocator (for planning a
    # GPU). cpu: the CPU's own kernel choices, exact tensor sizes, no allocator (to validate
    # against the `cpu` probe's measured RSS).
    target: Target = "cuda"
    # cuda target: compare the budget with reserved memory from the caching-allocator model
    # (off: with allocated bytes, i.e. the sum of live blocks).
    allocator: bool = True
    # cuda target: memory PyTorch allocates once through its allocator outside any tensor of
    # ours; the cuBLAS workspace of the training stream (32 MiB on Hopper, 4 MiB before).
    workspace_bytes: int = 32 << 20
    # Processes simulating steps of different buckets in parallel (1: in this process).
    workers: int = 1

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")


@dataclass(frozen=True)
class OomptimizeConfig:
    """Everything ``padless oomptimize`` takes besides the plan and output paths."""

    model: str  # preset name or checkpoint path
    probe: ProbeName = "simulate"
    # Bytes the probe may use; the cuda probe defaults to memory_fraction of the device.
    budget_bytes: int | None = None
    memory_fraction: float = 0.9  # cuda probe without an explicit budget
    step: StepConfig = field(default_factory=StepConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    simulate: SimulateConfig = field(default_factory=SimulateConfig)
    tokens_per_second: float | None = None  # shape of buckets with an open token bound

    def __post_init__(self) -> None:
        if self.probe not in PROBES:
            raise ValueError(f"probe must be one of {PROBES}, got {self.probe!r}")
        if self.probe != "cuda" and self.budget_bytes is None:
            raise ValueError(f"the {self.probe} probe needs a memory budget (--memory-budget)")
