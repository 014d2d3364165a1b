"""Readers that feed the sampler's buffer, chunk by chunk: in line, or from a producer thread.

A chunk is ``chunk_size`` consecutive examples of a rank's stream, already measured, filtered,
assigned to buckets and costed (`ChunkPreparer`), and tagged with the stream position right
after it. Both readers cut the stream into the same chunks, so what the sampler does never
depends on which one runs or on thread timing; only *when* reading happens changes.

`ConcurrentReader` runs the same reading in a daemon producer thread that fills a bounded
queue. The consumer blocks in ``queue.get`` (a condition variable: woken by the producer, no
polling), so the sampler starts as soon as the first chunks it needs exist -- by default 10% of
the buffer, see ``SamplerConfig.start_fill`` -- while the producer keeps reading. An exception
in the producer is passed through the queue and re-raised in the consumer with its original
traceback. ``close()`` stops the producer: it sets a stop event and drains the queue so a
producer blocked on a full queue wakes up, sees the event and exits; then it joins the thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass
from itertools import compress, islice
from typing import Any, NamedTuple, Protocol

import numpy as np

from padless.sampling.assign import BucketAssigner
from padless.sampling.filters import FilterConfig
from padless.sampling.lengths import LengthFn
from padless.sampling.policies import BatchPolicy
from padless.sampling.sources import ExampleSource, SourceIterator


class Prepared(NamedTuple):
    """The kept items of a chunk with their lengths, policy costs and buckets."""

    items: list[Any]
    dur: np.ndarray  # (n,) float64 s
    tok: np.ndarray  # (n,) int64
    cost: np.ndarray  # (n,) int64
    bucket: np.ndarray  # (n,) int64
    dropped: dict[str, int]  # reason -> count, for the items not kept


@dataclass(frozen=True)
class ChunkPreparer:
    """lengths -> filters -> bucket assignment -> batch-limit check, for a chunk at once."""

    lengths: LengthFn
    filters: FilterConfig
    assigner: BucketAssigner
    policy: BatchPolicy

    def __call__(self, items: list[Any]) -> Prepared:
        counts: Counter[str] = Counter()
        dur, tok = self.lengths(items)
        keep = self.filters.apply(dur, tok, counts)
        bucket = np.full(len(items), -1, dtype=np.int64)
        bucket[keep] = self.assigner.assign(dur[keep], tok[keep], counts)
        keep &= bucket >= 0
        cost = self.policy.costs(dur, tok)
        too_big = keep & ~self.policy.fits(cost)
        if too_big.any():  # an example no batch can hold under the policy's limit
            counts["exceeds_batch_limit"] += int(np.count_nonzero(too_big))
            keep &= ~too_big
        if not keep.all():
            items = list(compress(items, keep.tolist()))
            dur, tok, cost, bucket = dur[keep], tok[keep], cost[keep], bucket[keep]
        return Prepared(items, dur, tok, cost, bucket, dict(counts))


class Chunk(NamedTuple):
    prepared: Prepared
    read: int  # examples read from the stream (kept or not)
    epoch: int  # data epoch the chunk belongs to
    position: Any  # stream position right after the chunk
    read_s: float  # seconds spent reading it from the stream (not preparing it)
    last: bool  # no examples follow in this (finite) stream


class ChunkReader(Protocol):
    def next_chunk(self) -> Chunk | None:
        """The next chunk, or None when a finite stream is exhausted."""
        ...

    def close(self) -> None: ...


class EmptySourceError(RuntimeError):
    """An infinite sampler's source has no examples at all."""


class SequentialReader:
    """Reads chunks in the calling thread. ``infinite``: at the end of an epoch's data, reopen
    the source at the next epoch (a rank's data epochs advance on their own).

    It reads one chunk ahead, so the chunk that ends a finite stream comes flagged ``last``:
    the sampler knows its data has run out before it cuts another batch, which balancing
    batch counts across ranks needs.
    """

    def __init__(
        self,
        source: ExampleSource,
        epoch: int,
        position: Any,
        chunk_size: int,
        prepare: ChunkPreparer,
        infinite: bool = False,
    ) -> None:
        self.source = source
        self.epoch = epoch
        self.chunk_size = chunk_size
        self.prepare = prepare
        self.infinite = infinite
        self._it: SourceIterator | None = source.open(epoch, position)
        self._ahead: tuple[list[Any], int, Any] | None = None  # (items, epoch, position after)

    def _read_raw(self) -> tuple[list[Any], int, Any]:
        """The next raw chunk with its epoch and the position after it; [] at the end."""
        assert self._it is not None
        raw = self._read()
        if not raw and self.infinite:
            self.epoch += 1
            self._it = self.source.open(self.epoch, None)
            raw = self._read()
            if not raw:
                raise EmptySourceError(f"the source has no examples (epoch {self.epoch})")
        return raw, self.epoch, self._it.position

    def next_chunk(self) -> Chunk | None:
        if self._it is None:
            return None
        t0 = time.perf_counter()
        raw, epoch, position = self._ahead if self._ahead is not None else self._read_raw()
        if not raw:
            self.close()
            return None
        self._ahead = self._read_raw()
        last = not self._ahead[0]
        read_s = time.perf_counter() - t0
        return Chunk(self.prepare(raw), len(raw), epoch, position, read_s, last)

    def _read(self) -> list[Any]:
        it = self._it
        assert it is not None
        take = getattr(it, "take", None)
        return take(self.chunk_size) if take is not None else list(islice(it, self.chunk_size))

    def close(self) -> None:
        close = getattr(self._it, "close", None)
        if close is not None:
            close()
        self._it = None
        self._ahead = None


class _End:
    pass


class _Failure(NamedTuple):
    error: BaseException


class ConcurrentReader:
    """A `SequentialReader` run by a producer thread into a queue of at most ``max_chunks``."""

    def __init__(self, inner: SequentialReader, max_chunks: int) -> None:
        self._inner = inner
        self._queue: queue.Queue[Chunk | _End | _Failure] = queue.Queue(maxsize=max(1, max_chunks))
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(
            target=self._produce, name="padless-sampler-reader", daemon=True
        )
        self._thread.start()

    def _produce(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self._inner.next_chunk()
                if chunk is None:
                    self._queue.put(_End())
                    return
                self._queue.put(chunk)
                if chunk.last:
                    return
        except BaseException as err:
            self._queue.put(_Failure(err))
        finally:
            self._inner.close()

    def next_chunk(self) -> Chunk | None:
        if self._done:
            return None
        item = self._queue.get()
        if isinstance(item, _End):
            self._done = True
            return None
        if isinstance(item, _Failure):
            self._done = True
            raise item.error
        return item

    def close(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._done = True
        while self._thread.is_alive():
            try:  # make room so a producer blocked in put() wakes up and sees the stop event
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.05)
            timeout -= 0.05
            if timeout <= 0:
                raise RuntimeError("the sampler's reader thread did not stop (stuck reading?)")
