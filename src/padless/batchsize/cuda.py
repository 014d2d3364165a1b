"""The ``cuda`` probe: real training steps on a GPU, out-of-memory caught and recovered.

The budget is enforced by PyTorch itself: ``torch.cuda.set_per_process_memory_fraction`` caps
the caching allocator at ``budget / device memory``, so a step "fits" exactly when it runs
without ``torch.OutOfMemoryError`` (the allocator frees its cache and retries before raising,
as in training). The model and optimizer state are built once and stay on the device; between
trials everything else is freed, the cache emptied and the peak statistics reset, so each
trial's peak (``max_memory_reserved``) is its own.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence

import torch

from padless.batchsize.config import StepConfig
from padless.batchsize.search import BucketShape, Measurement
from padless.batchsize.workload import (
    AEDWorkload,
    autocast_dtype,
    make_optimizer,
    training_step,
)


def device_budget(fraction: float, device: str = "cuda") -> int:
    """``fraction`` of the device's total memory, in bytes."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"memory fraction must be in (0, 1], got {fraction}")
    if not torch.cuda.is_available():
        raise RuntimeError("the cuda probe needs a CUDA device; use --probe simulate without one")
    return int(fraction * torch.cuda.get_device_properties(torch.device(device)).total_memory)


class CudaProbe:
    """`MemoryProbe` running trial steps on a CUDA device."""

    name = "cuda"

    def __init__(
        self,
        workload: AEDWorkload,
        step: StepConfig,
        budget_bytes: int,
        device: str = "cuda",
    ) -> None:
        if not torch.cuda.is_available():
            raise RuntimeError("the cuda probe needs a CUDA device; use --probe simulate")
        self.workload = workload
        self.step = step
        self.device = torch.device(device)
        total = torch.cuda.get_device_properties(self.device).total_memory
        if budget_bytes > total:
            raise ValueError(f"budget {budget_bytes} B exceeds the device's {total} B")
        self.budget_bytes = budget_bytes
        torch.cuda.set_per_process_memory_fraction(budget_bytes / total, self.device)
        with self.device:
            self.model = workload.build(step)
            self.optimizer = make_optimizer(self.model, step)
        self.static_bytes = torch.cuda.memory_allocated(self.device)
        self.last_peak_allocated: int | None = None  # max_memory_allocated of the last trial

    def prepare(self, shapes: Sequence[BucketShape]) -> None:
        return None

    def _autocast(self) -> torch.autocast:
        dtype = autocast_dtype(self.step)
        return torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None)

    def _step(self, shape: BucketShape, batch_size: int) -> None:
        # Locals die with this frame, so after an out-of-memory error nothing of the failed step
        # stays referenced once the exception is handled.
        batch = self.workload.batch(shape, batch_size, self.device)
        training_step(self.model, self.optimizer, batch, self.workload.loss, self._autocast)
        torch.cuda.synchronize(self.device)

    def _clean(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(self.device)

    def measure(self, shape: BucketShape, batch_size: int) -> Measurement:
        self._clean()
        start = time.perf_counter()
        try:
            self._step(shape, batch_size)
            fits = True
        except torch.OutOfMemoryError:
            fits = False
        seconds = time.perf_counter() - start
        if fits:
            peak: int | None = torch.cuda.max_memory_reserved(self.device)
            self.last_peak_allocated = torch.cuda.max_memory_allocated(self.device)
        else:
            peak = self.last_peak_allocated = None
        self._clean()
        return Measurement(batch_size, fits, peak, seconds)
