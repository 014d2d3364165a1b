"""Allocation traces of a simulated training step, and their replay at any batch size.

At a fixed bucket shape a training step runs the same ops in the same order for every batch
size; only tensor sizes change, and each storage's size is affine in the batch size ``n``
(``alpha + beta * n``: ``beta`` for tensors with a batch dimension, ``alpha`` for weights,
gradients, optimizer state and shape-only tensors such as positional encodings). Two recorded
steps at different ``n`` therefore give every event's ``alpha`` and ``beta`` exactly, and the
step at any other ``n`` is replayed from the event list in a fraction of a second instead of
re-running it (seconds per step under fake tensors for a 1B model). A third point checks it:
`AffineTrace.from_pair` refuses traces whose structure differs.

Between shapes only the few shape-only tensors change ``alpha``; `AffineTrace.from_reference`
takes ``alpha`` from a reference shape with the same op structure and derives ``beta`` from one
step, so each new bucket costs one simulated step. Its error is ``(1 - n / n_run)`` times the
change in those shape-only bytes, which is exact at the simulated ``n`` and a few MiB either
side of it for Canary-size models.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from padless.batchsize.allocator import CachingAllocatorModel
from padless.batchsize.tracker import FREE

#: Step-local allocation slots are renumbered from here, so that two steps with the same op
#: structure have identical slots; slots below it refer to allocations made before the step
#: (the model build), which a step may free.
LOCAL_BASE = 1 << 40


@dataclass(frozen=True)
class StaticTrace:
    """The events before any step (model build, optimizer state): replayed before each step."""

    slots: np.ndarray  # (E,) int64
    sizes: np.ndarray  # (E,) int64, FREE for frees

    @classmethod
    def from_events(cls, events: list[tuple[int, int]]) -> StaticTrace:
        arr = np.asarray(events, dtype=np.int64).reshape(-1, 2)
        return cls(arr[:, 0].copy(), arr[:, 1].copy())

    @property
    def live_bytes(self) -> int:
        curve = _live_curve(self.slots, self.sizes)
        return int(curve[-1]) if len(curve) else 0


@dataclass(frozen=True)
class StepTrace:
    """The events of one recorded step (see `MemoryTracker.events`), at one batch size."""

    batch_size: int
    slots: np.ndarray  # (E,) int64: allocation slot of each event (step-local >= LOCAL_BASE)
    sizes: np.ndarray  # (E,) int64: bytes for an allocation, FREE for a free
    marks: tuple[tuple[int, str], ...]  # (event index, phase) at phase changes
    seconds: float  # wall time of the recorded step

    @classmethod
    def from_events(
        cls,
        batch_size: int,
        events: list[tuple[int, int]],
        first: int,
        marks: list[tuple[int, str]],
        seconds: float,
    ) -> StepTrace:
        """``events[first:]`` are the step's; ``marks`` index into ``events``."""
        arr = np.asarray(events[first:], dtype=np.int64).reshape(-1, 2)
        slots = arr[:, 0].copy()
        local = slots >= first
        slots[local] += LOCAL_BASE - first
        step_marks = tuple((i - first, name) for i, name in marks if i >= first)
        sizes = arr[:, 1].copy()
        order = _canonical_free_order(slots, sizes, [i for i, _ in step_marks])
        return cls(batch_size, slots[order], sizes[order], step_marks, seconds)

    @property
    def signature(self) -> str:
        """Identifies the op structure: which event frees which allocation, in what order."""
        return _signature(self.slots, self.sizes == FREE)

    def phase_start(self, phase: str) -> int:
        """Index of the first event of ``phase``."""
        for index, name in self.marks:
            if name == phase:
                return index
        raise KeyError(f"the trace has no phase {phase!r}")

    def prefix_signature(self, phase: str) -> str:
        """The signature of the events before ``phase``."""
        end = self.phase_start(phase)
        return _signature(self.slots[:end], self.sizes[:end] == FREE)


def _canonical_free_order(slots: np.ndarray, sizes: np.ndarray, marks: list[int]) -> np.ndarray:
    """Event order with each run of consecutive frees sorted by slot.

    Frees with no allocation between them release their blocks at the same moment as far as
    memory goes (live bytes, and the allocator's free lists once the run is over, are the same
    in any order), but their recorded order is not always reproducible: leaving autocast
    clears its cache of bf16 weight copies in hash-map order, i.e. by memory address. Sorting
    each run makes two steps of the same structure compare equal. Runs stop at phase marks.
    """
    n = len(sizes)
    free = sizes == FREE
    starts = np.ones(n, dtype=bool)  # event i starts a new run
    starts[1:] = ~(free[1:] & free[:-1])
    starts[[i for i in marks if i < n]] = True
    run = np.cumsum(starts)
    return np.lexsort((slots, run))


def _signature(slots: np.ndarray, free: np.ndarray) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(slots.tobytes())
    digest.update(free.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Replay:
    """Memory of one replayed step (peaks include the static memory before it)."""

    peak_live: int  # most bytes of tensor storage alive at once (exact sizes)
    peak_allocated: int  # the same in allocator blocks (rounded sizes); = peak_live without one
    peak_reserved: int  # most bytes in allocator segments; = peak_allocated without one
    peak_in_use: int  # most bytes in segments holding live blocks; = peak_allocated without one
    oom: bool  # the allocator could not stay within its limit
    peak_phase: str  # phase in which peak_live was reached


@dataclass(frozen=True)
class AffineTrace:
    """A step's events with sizes ``alpha + beta * n``, replayable at any batch size ``n``."""

    slots: np.ndarray  # (E,) int64
    alpha: np.ndarray  # (E,) float64; 0 for frees
    beta: np.ndarray  # (E,) float64; 0 for frees
    is_free: np.ndarray  # (E,) bool
    marks: tuple[tuple[int, str], ...]
    signature: str

    @classmethod
    def from_pair(cls, a: StepTrace, b: StepTrace) -> AffineTrace:
        """Exact alpha and beta from two steps at different batch sizes."""
        if a.batch_size == b.batch_size:
            raise ValueError("need two different batch sizes")
        if a.signature != b.signature:
            raise ValueError(
                f"the step's op structure differs between batch sizes {a.batch_size} and "
                f"{b.batch_size}; the model must not branch on the batch size"
            )
        free = a.sizes == FREE
        beta = (b.sizes - a.sizes) / (b.batch_size - a.batch_size)
        alpha = a.sizes - beta * a.batch_size
        beta[free] = alpha[free] = 0.0
        return cls(a.slots, alpha, beta, free, a.marks, a.signature)

    @classmethod
    def constant(cls, run: StepTrace) -> AffineTrace:
        """A trace that replays ``run`` exactly as recorded, whatever ``n`` it is given."""
        free = run.sizes == FREE
        alpha = np.where(free, 0.0, run.sizes.astype(np.float64))
        return cls(run.slots, alpha, np.zeros(len(alpha)), free, run.marks, run.signature)

    @classmethod
    def from_reference(cls, reference: AffineTrace, run: StepTrace) -> AffineTrace:
        """``alpha`` of a reference shape with the same structure; ``beta`` from one step."""
        if reference.signature != run.signature:
            raise ValueError("reference trace has a different op structure")
        free = run.sizes == FREE
        beta = (run.sizes - reference.alpha) / run.batch_size
        beta[free] = 0.0
        return cls(run.slots, reference.alpha, beta, free, run.marks, run.signature)

    def splice_update(self, run: StepTrace, phase: str = "optimizer") -> StepTrace:
        """``run`` up to ``phase``, then this trace's events from ``phase`` on.

        For a run recorded without the optimizer update: the update allocates the same
        temporaries and frees the same gradients for every shape of the same op structure, so
        the reference's recording of it completes the run. The caller checks the structure.
        """
        mine = next(i for i, name in self.marks if name == phase)
        theirs = run.phase_start(phase)
        sizes = self.sizes(run.batch_size)
        marks = [(i, name) for i, name in run.marks if i < theirs]
        marks += [(i - mine + theirs, name) for i, name in self.marks if i >= mine]
        return StepTrace(
            run.batch_size,
            np.concatenate([run.slots[:theirs], self.slots[mine:]]),
            np.concatenate([run.sizes[:theirs], sizes[mine:]]),
            tuple(marks),
            run.seconds,
        )

    def prefix_signature(self, phase: str) -> str:
        end = next(i for i, name in self.marks if name == phase)
        return _signature(self.slots[:end], self.is_free[:end])

    def sizes(self, n: int) -> np.ndarray:
        sizes = np.rint(self.alpha + self.beta * n).astype(np.int64)
        np.maximum(sizes, 0, out=sizes)
        sizes[self.is_free] = FREE
        return sizes

    def replay(
        self,
        n: int,
        static: StaticTrace,
        allocator: CachingAllocatorModel | None = None,
    ) -> Replay:
        """Replay the ``static`` events, then the step at batch size ``n``.

        With an ``allocator`` (fresh, with its limit set) every event also goes through it.
        """
        sizes = self.sizes(n)
        slots = np.concatenate([static.slots, self.slots])
        live = _live_curve(slots, np.concatenate([static.sizes, sizes]))
        step_live = live[len(static.slots) :]
        top = int(np.argmax(step_live)) if len(step_live) else 0
        peak_live = int(step_live[top]) if len(step_live) else static.live_bytes
        phase = ""
        for index, name in self.marks:
            if index <= top:
                phase = name
        if allocator is None:
            return Replay(peak_live, peak_live, peak_live, peak_live, False, phase)
        _apply(allocator, static.slots.tolist(), static.sizes.tolist())
        allocator.reset_peaks()
        _apply(allocator, self.slots.tolist(), sizes.tolist())
        return Replay(
            peak_live,
            allocator.peak_allocated,
            allocator.peak_reserved,
            allocator.peak_in_use,
            allocator.oom,
            phase,
        )


def _live_curve(slots: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Live bytes after each event."""
    free = sizes == FREE
    unique = np.unique(slots)
    dense = np.searchsorted(unique, slots)
    alloc_size = np.zeros(len(unique), dtype=np.int64)
    alloc_size[dense[~free]] = sizes[~free]
    delta = np.where(free, -alloc_size[dense], sizes)
    return np.cumsum(delta)


def _apply(allocator: CachingAllocatorModel, slots: list[int], sizes: list[int]) -> None:
    for slot, size in zip(slots, sizes, strict=True):
        if size == FREE:
            allocator.free(slot)
        elif size:
            allocator.malloc(slot, size)
