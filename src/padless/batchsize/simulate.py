"""The ``simulate`` probe: peak memory of a training step without allocating any memory.

The model, optimizer and batch are fake tensors (``FakeTensorMode``: shapes, dtypes and strides,
no storage); the step runs op by op with PyTorch's own meta kernels and autograd, and a
`MemoryTracker` records every storage allocation and free. For a CUDA target the step runs
under `cuda_emulation` (CUDA's autocast policy, attention kernel and dropout choices) and the
recorded events are replayed through `CachingAllocatorModel`, so the budget is compared with
what a GPU would *reserve*, fragmentation included, and "fits" means "the allocator never ran
out" exactly as a real out-of-memory error would be raised.

A simulated step of Canary-1B takes seconds of CPU time, so each bucket shape is simulated once
(the first, longest one twice) and every batch size the search asks about is a replay of that
trace with its sizes rescaled (`padless.batchsize.trace`): under a second each.
Steps of different buckets are independent, so ``workers`` processes can simulate them in
parallel while the search replays.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from padless.batchsize.allocator import CachingAllocatorModel
from padless.batchsize.config import SimulateConfig, StepConfig
from padless.batchsize.cuda_emulation import cuda_step
from padless.batchsize.search import BucketShape, Measurement
from padless.batchsize.trace import AffineTrace, Replay, StaticTrace, StepTrace
from padless.batchsize.tracker import FREE, MemoryTracker
from padless.batchsize.workload import (
    AEDWorkload,
    autocast_dtype,
    make_optimizer,
    training_step,
)

#: Batch sizes a shape's step is simulated at. Above 1, so that no op sees a singleton batch
#: dimension (which can change views and copies); the extrapolation to other sizes is exact.
RUN_BATCH_SIZES = (2, 3)


class _Session:
    """A fake model + optimizer in this process, recording one step trace at a time."""

    def __init__(self, workload: AEDWorkload, step: StepConfig, config: SimulateConfig) -> None:
        self.workload = workload
        self.step = step
        self.config = config
        self.fake = FakeTensorMode()
        self.tracker = MemoryTracker()
        self.tracker.set_phase("build")
        with self.fake, self.tracker:
            self.model = workload.build(step)
            self.optimizer = make_optimizer(self.model, step)
            if config.target == "cuda" and config.workspace_bytes:
                self.workspace = torch.empty(config.workspace_bytes, dtype=torch.uint8)
        self.static = StaticTrace.from_events(list(self.tracker.events))
        self._static_events = len(self.tracker.events)
        self._static_marks = len(self.tracker.marks)

    def _autocast(self) -> Callable[[], contextlib.AbstractContextManager[object]]:
        dtype = autocast_dtype(self.step)
        if self.config.target == "cuda":
            return lambda: cuda_step(dtype)
        if dtype is not None:
            return lambda: torch.autocast("cpu", dtype=dtype)
        return contextlib.nullcontext

    def run(self, shape: BucketShape, batch_size: int, update: bool = True) -> StepTrace:
        """Record one step; ``update=False`` skips the optimizer update (see `splice_update`)."""
        tracker = self.tracker
        live_before = tracker.live_bytes
        start = time.perf_counter()
        # A storage freed by the cycle collector would be freed at whatever op the collector
        # happened to run on; with it paused, such storages are freed at the end of the step,
        # always, and two runs of the same shape record the same events.
        gc.collect()
        gc.disable()
        try:
            with self.fake, tracker:
                tracker.set_phase("batch")
                batch = self.workload.batch(shape, batch_size, torch.device("cpu"))
                training_step(
                    self.model,
                    self.optimizer,
                    batch,
                    self.workload.loss,
                    self._autocast(),
                    tracker.set_phase,
                    update=update,
                )
                del batch
                gc.collect()
        finally:
            gc.enable()
        seconds = time.perf_counter() - start
        if tracker.live_bytes != live_before:
            raise RuntimeError(
                f"{shape.describe()}: a training step left {tracker.live_bytes - live_before} "
                "bytes of tensors alive; the step must end where it started"
            )
        trace = StepTrace.from_events(
            batch_size, tracker.events, self._static_events, tracker.marks, seconds
        )
        # Forget the step's events: the next step's slots then start from the same number.
        del tracker.events[self._static_events :]
        del tracker.marks[self._static_marks :]
        return trace


# One session per worker process.
_WORKER: _Session | None = None


def _worker_init(workload: AEDWorkload, step: StepConfig, config: SimulateConfig) -> None:
    global _WORKER
    torch.set_num_threads(1)
    _WORKER = _Session(workload, step, config)


def _worker_static() -> StaticTrace:
    assert _WORKER is not None
    return _WORKER.static


def _worker_run(shape: BucketShape, batch_size: int, update: bool) -> StepTrace:
    assert _WORKER is not None
    return _WORKER.run(shape, batch_size, update)


class SimulateProbe:
    """`MemoryProbe` that simulates training steps on fake tensors (see module docs)."""

    name = "simulate"

    def __init__(
        self,
        workload: AEDWorkload,
        step: StepConfig,
        budget_bytes: int,
        config: SimulateConfig | None = None,
    ) -> None:
        self.workload = workload
        self.step = step
        self.budget_bytes = budget_bytes
        self.config = config or SimulateConfig()
        self.steps_simulated = 0  # fake training steps run (the expensive part)
        self.simulation_seconds = 0.0
        self.last_replay: Replay | None = None
        self._session: _Session | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._static: StaticTrace | None = None
        self._traces: dict[BucketShape, AffineTrace] = {}
        self._references: dict[str, AffineTrace] = {}
        self._pending: dict[tuple[BucketShape, int, bool], Future[StepTrace]] = {}

    # -- running steps ---------------------------------------------------------------------

    def _start(self) -> None:
        if self._static is not None:
            return
        if self.config.workers == 1:
            self._session = _Session(self.workload, self.step, self.config)
            self._static = self._session.static
            return
        self._pool = ProcessPoolExecutor(
            max_workers=self.config.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(self.workload, self.step, self.config),
        )
        self._static = self._pool.submit(_worker_static).result()

    def _submit(self, shape: BucketShape, batch_size: int, update: bool) -> None:
        key = (shape, batch_size, update)
        if self._pool is not None and key not in self._pending:
            self._pending[key] = self._pool.submit(_worker_run, *key)

    def _run(self, shape: BucketShape, batch_size: int, update: bool = True) -> StepTrace:
        self._start()
        future = self._pending.pop((shape, batch_size, update), None)
        if future is None and self._pool is not None:
            future = self._pool.submit(_worker_run, shape, batch_size, update)
        if future is not None:
            trace = future.result()
        else:
            assert self._session is not None
            trace = self._session.run(shape, batch_size, update)
        self.steps_simulated += 1
        self.simulation_seconds += trace.seconds
        return trace

    def prepare(self, shapes: Sequence[BucketShape]) -> None:
        """Start simulating ``shapes`` (in search order) on the worker processes."""
        if self.config.workers == 1 or not shapes:
            return
        self._start()
        first, *rest = shapes
        for n in RUN_BATCH_SIZES:
            self._submit(first, n, True)
        for shape in rest:
            self._submit(shape, RUN_BATCH_SIZES[0], False)

    def trace(self, shape: BucketShape) -> AffineTrace:
        """The replayable trace of ``shape``, simulating its step if not done yet."""
        cached = self._traces.get(shape)
        if cached is not None:
            return cached
        affine: AffineTrace | None = None
        if self._references:
            # One step without the optimizer update, completed from a reference of the same
            # structure (the update does not depend on the batch).
            partial = self._run(shape, RUN_BATCH_SIZES[0], update=False)
            reference = self._references.get(partial.prefix_signature("optimizer"))
            if reference is not None:
                affine = _from_reference(reference, reference.splice_update(partial))
        if affine is None:
            affine = self._pair(shape, self._run(shape, RUN_BATCH_SIZES[0]))
            self._references[affine.prefix_signature("optimizer")] = affine
        self._traces[shape] = affine
        return affine

    def _pair(self, shape: BucketShape, first: StepTrace) -> AffineTrace:
        """An exact trace from ``first`` and steps at other sizes with the same structure."""
        runs = [first]
        for n in (*RUN_BATCH_SIZES[1:], RUN_BATCH_SIZES[-1] + 1, RUN_BATCH_SIZES[-1] + 2):
            run = self._run(shape, n)
            match = next((r for r in runs if r.signature == run.signature), None)
            if match is not None:
                return AffineTrace.from_pair(match, run)
            runs.append(run)
        raise RuntimeError(
            f"{shape.describe()}: the training step's op structure changed between runs at "
            f"batch sizes {[r.batch_size for r in runs]}; the simulator needs a step that runs "
            "the same ops for every batch size"
        )

    # -- the probe -------------------------------------------------------------------------

    def replay(self, shape: BucketShape, batch_size: int, limit: int | None = None) -> Replay:
        """Memory of a step at ``batch_size``; ``limit`` caps the allocator model (cuda)."""
        trace = self.trace(shape)
        assert self._static is not None
        allocator = None
        if self.config.target == "cuda" and self.config.allocator:
            allocator = CachingAllocatorModel(limit)
        return trace.replay(batch_size, self._static, allocator)

    def direct(self, shape: BucketShape, batch_size: int) -> Replay:
        """Simulate a step at exactly ``batch_size`` (no extrapolation), to check replays."""
        run = self._run(shape, batch_size)
        assert self._static is not None
        allocator = None
        if self.config.target == "cuda" and self.config.allocator:
            allocator = CachingAllocatorModel()
        return AffineTrace.constant(run).replay(batch_size, self._static, allocator)

    def measure(self, shape: BucketShape, batch_size: int) -> Measurement:
        """Fits: the allocator model capped at the budget never runs out (as a GPU would raise
        out-of-memory). Peak: the segments holding live blocks at the worst moment, the part of
        reserved memory the step cannot do without (cached free segments are released before
        an out-of-memory error, so they do not count against the budget)."""
        start = time.perf_counter()
        replay = self.replay(shape, batch_size, limit=self.budget_bytes)
        self.last_replay = replay
        if self.config.target == "cuda" and self.config.allocator:
            fits, peak = not replay.oom, replay.peak_in_use
        else:
            peak = replay.peak_allocated
            fits = peak <= self.budget_bytes
        return Measurement(batch_size, fits, peak, time.perf_counter() - start)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> SimulateProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _from_reference(reference: AffineTrace, run: StepTrace) -> AffineTrace:
    """One step of a new shape + a reference shape with the same structure -> affine trace.

    Per event: a storage without a batch dimension in the reference (beta = 0) has this step's
    size; one with only a batch dimension (alpha = 0) scales with the batch size; only storages
    with both parts (rare) take alpha from the reference.
    """
    if run.signature != reference.signature:
        raise ValueError("the run and the reference differ in op structure")
    free = run.sizes == FREE
    sizes = run.sizes.astype(np.float64)
    n = run.batch_size
    batch_free = reference.beta == 0.0
    batch_only = (reference.alpha == 0.0) & ~batch_free
    alpha = np.where(batch_free, sizes, np.where(batch_only, 0.0, reference.alpha))
    beta = np.where(batch_free, 0.0, np.where(batch_only, sizes / n, (sizes - alpha) / n))
    alpha[free] = beta[free] = 0.0
    return AffineTrace(run.slots, alpha, beta, free, run.marks, run.signature)
