"""The ``cpu`` probe: real training steps on the CPU, peak memory measured by the kernel.

Each trial runs in a fresh process (forked from a server that has imported torch and padless
but run nothing, so a trial starts in ~0.1 s instead of ~2 s), builds the model and optimizer,
runs one training step and reports the process's peak resident memory (``VmHWM`` in
``/proc/self/status``) minus its resident memory just before the model was built. That counts
what the simulator counts (model, optimizer state, batch, activations, temporaries) plus
everything it cannot see: memory kernels allocate internally, allocator overhead, autograd's
own bookkeeping. It is independent of the simulator's accounting, which is what makes it a
check of the simulator.

Two things keep RSS honest as a measure of live memory, both set in the trial process:

* glibc's malloc normally raises its mmap threshold after large frees, after which freed
  tensors stay in the heap and RSS only grows. The threshold is pinned (64 KiB), so every
  tensor of any size is its own mapping and is returned to the kernel when freed.
* Lazy one-time allocations (oneDNN kernel caches, code imported on first use) happen during a
  tiny warm-up step before the baseline is taken, not inside the measurement.

"Fits" on a CPU means the measured peak is within the budget. Linux only (``/proc``).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing
import re
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import torch

from padless.batchsize.config import StepConfig
from padless.batchsize.search import BucketShape, Measurement
from padless.batchsize.workload import (
    AEDWorkload,
    autocast_dtype,
    make_optimizer,
    training_step,
)

#: Modules the fork server imports once, so trial processes start warm.
_PRELOAD = ["torch", "padless.model", "padless.data.dataset", __name__]
_MALLOC_MMAP_THRESHOLD = -3  # mallopt parameters, from <malloc.h>
_MALLOC_TRIM_THRESHOLD = -1


@dataclass(frozen=True)
class CpuProbeConfig:
    """How trial processes run."""

    threads: int = 1  # torch intra-op threads in each trial process
    # Run a batch-1 step of the shortest shape first, unmeasured (see module docs).
    warmup: bool = True
    timeout_s: float = 1800.0  # per trial


@dataclass(frozen=True)
class CpuTrial:
    """What one trial process measured."""

    peak_bytes: int  # VmHWM - baseline VmRSS
    baseline_bytes: int  # VmRSS before the model was built
    seconds: float  # the step alone


class CpuProbe:
    """`MemoryProbe` running each trial step in a fresh CPU process."""

    name = "cpu"

    def __init__(
        self,
        workload: AEDWorkload,
        step: StepConfig,
        budget_bytes: int,
        config: CpuProbeConfig | None = None,
    ) -> None:
        self.workload = workload
        self.step = step
        self.budget_bytes = budget_bytes
        self.config = config or CpuProbeConfig()
        self.trials: list[CpuTrial] = []

    def prepare(self, shapes: Sequence[BucketShape]) -> None:
        return None

    def measure(self, shape: BucketShape, batch_size: int) -> Measurement:
        start = time.perf_counter()
        trial = run_trial(self.workload, self.step, shape, batch_size, self.config)
        self.trials.append(trial)
        fits = trial.peak_bytes <= self.budget_bytes
        return Measurement(batch_size, fits, trial.peak_bytes, time.perf_counter() - start)


def run_trial(
    workload: AEDWorkload,
    step: StepConfig,
    shape: BucketShape,
    batch_size: int,
    config: CpuProbeConfig,
) -> CpuTrial:
    """One training step in a fresh process; raises RuntimeError if the process fails."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=_trial_main,
        args=(child, workload, step, shape, batch_size, config),
        name=f"oomptimizer-cpu-{shape.index}-{batch_size}",
    )
    process.start()
    child.close()
    try:
        if not parent.poll(config.timeout_s):
            raise RuntimeError(f"{shape.describe()}: trial timed out after {config.timeout_s} s")
        status, payload = parent.recv()
    except EOFError:
        process.join()
        raise RuntimeError(
            f"{shape.describe()}, batch {batch_size}: trial process died with exit code "
            f"{process.exitcode} (killed for memory?)"
        ) from None
    finally:
        if process.is_alive():
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
        parent.close()
    if status != "ok":
        raise RuntimeError(f"{shape.describe()}, batch {batch_size}: trial failed:\n{payload}")
    assert isinstance(payload, CpuTrial)
    return payload


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field}")
    return int(match.group(1))


def _reset_peak_rss() -> None:
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    Path("/proc/self/clear_refs").write_text("5")


def _pin_malloc() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_MALLOC_MMAP_THRESHOLD, 64 << 10)
        libc.mallopt(_MALLOC_TRIM_THRESHOLD, 128 << 10)


def _autocast(step: StepConfig) -> contextlib.AbstractContextManager[object]:
    dtype = autocast_dtype(step)
    return torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _one_step(
    workload: AEDWorkload, step: StepConfig, shape: BucketShape, batch_size: int
) -> float:
    model = workload.build(step)
    optimizer = make_optimizer(model, step)
    batch = workload.batch(shape, batch_size, torch.device("cpu"))
    start = time.perf_counter()
    training_step(model, optimizer, batch, workload.loss, lambda: _autocast(step))
    return time.perf_counter() - start


def _trial_main(
    conn: Connection,
    workload: AEDWorkload,
    step: StepConfig,
    shape: BucketShape,
    batch_size: int,
    config: CpuProbeConfig,
) -> None:
    try:
        _pin_malloc()
        torch.set_num_threads(config.threads)
        torch.manual_seed(step.seed)
        if config.warmup:
            _one_step(workload, step, BucketShape(1.0, 8), 1)
            gc.collect()
        baseline = _status_kib("VmRSS") * 1024
        _reset_peak_rss()
        seconds = _one_step(workload, step, shape, batch_size)
        peak = _status_kib("VmHWM") * 1024 - baseline
        conn.send(("ok", CpuTrial(peak, baseline, seconds)))
    except BaseException:  # report anything, including MemoryError, to the parent
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()
