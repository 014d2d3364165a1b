"""Equal batch counts across ranks in finite epochs, without communication.

Each rank's data and batch sizes differ, so left alone ranks end an epoch after different
numbers of batches and a DDP job hangs on the rank that has one more. padless makes every rank
yield the same number ``T`` of batches, and every example still appears exactly once:

- **Replay.** Each rank runs, in a background thread started with the epoch, the other ranks'
  engines over their metadata (the same code, seeds and data as those ranks run) and counts
  their batches: ``batches`` (natural batches of the epoch) and ``capacity`` (batches before
  the stream ran out + examples left in the buffer then: the most the lane can yield by
  splitting its final batches). Cost: every rank reads every rank's metadata once per epoch,
  ``(W-1)/W`` of the dataset's metadata; at ~200k examples/s per core that is ~5 s per million
  examples, in a thread, overlapped with training; memory is one extra buffer.
- **Agreement.** ``T = min(max(batches), min(capacity))``, the same number on every rank.
- **Splitting.** When a rank's stream runs out it drains its buffer into its remaining natural
  batches (deterministic, O(buffer)) and splits the *last* ones into contiguous pieces until it
  has ``T`` in all. A piece of a batch respects every batch limit. Splitting the last batches
  keeps the ranks' bucket sequences aligned for as long as possible.
- **Dropping** happens only when a rank has more natural batches than some rank could ever
  yield (``T < batches``): its last batches are dropped and counted (``rank_balance``). With
  padless's byte-balanced data split this needs a rank with fewer examples than another has
  batches; e.g. batch size 1 and ``N`` examples over ``W`` ranks drops ``N mod W`` examples.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import NamedTuple

from padless.sampling.engine import Batch, LaneEngine


class LaneCount(NamedTuple):
    batches: int  # natural batches of the epoch
    capacity: (
        int  # most batches reachable by splitting the drain (batches before it + examples in it)
    )


class Stopped(Exception):
    """Counting was cancelled (the sampler shut down)."""


def count_lane(engine: LaneEngine, stop: threading.Event | None = None) -> LaneCount:
    """Run a fresh engine to the end of its epoch, counting (metadata only)."""
    try:
        while True:
            engine.refill()
            if engine.exhausted:
                break
            if engine.next_batch() is None:  # nothing left though the stream was not exhausted
                return LaneCount(engine.step, engine.step)
            if stop is not None and engine.step % 64 == 0 and stop.is_set():
                raise Stopped
        before, left = engine.step, engine.buffer.size
        drained = len(engine.drain())
        return LaneCount(before + drained, before + left)
    finally:
        engine.close()


def target_count(counts: Sequence[LaneCount]) -> int:
    """The number of batches every rank yields."""
    return min(max(c.batches for c in counts), min(c.capacity for c in counts))


def split_tail(drain: list[Batch], outputs: int) -> list[Batch]:
    """``drain`` turned into ``outputs`` batches by splitting its last batches into contiguous
    pieces (``outputs`` >= len(drain)), or by dropping its last batches (``outputs`` < len)."""
    if outputs <= len(drain):
        return drain[:outputs]
    extra = outputs - len(drain)
    pieces = [1] * len(drain)
    for j in range(len(drain) - 1, -1, -1):
        add = min(len(drain[j].items) - 1, extra)
        pieces[j] += add
        extra -= add
        if extra == 0:
            break
    if extra:
        raise ValueError(f"cannot split {len(drain)} batches into {outputs}: too few examples")
    out: list[Batch] = []
    for batch, p in zip(drain, pieces, strict=True):
        out.extend(_split(batch, p) if p > 1 else [batch])
    return out


def _split(batch: Batch, pieces: int) -> list[Batch]:
    n = len(batch.items)
    cuts = [n * i // pieces for i in range(pieces + 1)]
    return [
        Batch(batch.items[a:b], batch.bucket, batch.drawn, False, batch.dur[a:b], batch.tok[a:b])
        for a, b in pairwise(cuts)
    ]


class Replay:
    """Counts the other ranks' batches in a daemon thread; ``result()`` waits for it."""

    def __init__(self, lanes: Sequence[int], make_engine: Callable[[int], LaneEngine]) -> None:
        self.lanes = list(lanes)
        self._make = make_engine
        self._counts: dict[int, LaneCount] = {}
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="padless-sampler-replay", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        try:
            for lane in self.lanes:
                if self._stop.is_set():
                    return
                self._counts[lane] = count_lane(self._make(lane), self._stop)
        except Stopped:
            pass
        except BaseException as err:
            self._error = err
        finally:
            self._done.set()

    def result(self) -> dict[int, LaneCount]:
        self._done.wait()
        if self._error is not None:
            raise RuntimeError("counting the other ranks' batches failed") from self._error
        return dict(self._counts)

    def close(self, timeout: float = 30.0) -> None:
        """Stop counting and join the thread (it checks the stop event every 64 batches)."""
        self._stop.set()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
