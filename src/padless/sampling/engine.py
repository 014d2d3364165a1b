"""One rank's sampling engine: buffer + reader + RNGs, one natural batch per step.

Each step (``next_batch``):

1. **refill**: read chunks until the buffer holds its target for this step. The target starts
   at ``start_fill`` of the buffer (10%: the first batch comes after ~2k examples, not 20k) and
   grows linearly to the full buffer over ``ramp_steps`` steps. The target depends on the step
   only, never on timing, so in-line and concurrent reading give identical batches. When no
   bucket holds a full batch (a buffer too small for the policy), reading goes on until one
   does, so partial batches come only once the data has run out.
2. **choose** a bucket: ready buckets hold a full batch under the policy; once the stream is
   exhausted any non-empty bucket is ready (the epoch's partial batches). `BucketChooser`
   draws (shared across ranks with sync) and falls back to the nearest ready bucket.
3. **form** the batch from the bucket's members:
   - ``random`` (the paper's): members in random order, cut by the policy;
   - ``sorted`` (default): each bucket's examples sit in ``lanes`` lists by output length
     (`padless.sampling.buffer`); the batch starts in the lane of a uniformly random member
     and takes lanes upwards, then downwards, oldest first within a lane, until the policy's
     batch is full (with ``spread > 1`` it takes that many times more and leaves a random
     excess in the buffer). The batch holds neighbours in output length, which removes most
     token padding, while every member is equally likely to start a batch and no example
     waits behind newer ones of its lane.

The engine is also what `padless.sampling.balance` runs for the other ranks to count their
batches; both must make identical decisions, so everything random comes from RNGs seeded by
(seed, epoch, rank) and saved in `state_dict`.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import accumulate, chain, pairwise
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np

from padless.sampling.assign import BucketAssigner
from padless.sampling.buffer import COST, ITEM, BucketBuffer, Entry
from padless.sampling.codec import decode_item, encode_item
from padless.sampling.concurrent import (
    ChunkPreparer,
    ChunkReader,
    ConcurrentReader,
    SequentialReader,
)
from padless.sampling.config import SamplerConfig, SortedBatching
from padless.sampling.lengths import ExampleLengths, LengthFn
from padless.sampling.plan import BucketPlan
from padless.sampling.policies import BatchPolicy
from padless.sampling.sources import ExampleSource
from padless.sampling.sync import BucketChooser, random_state, seeded_random, set_random_state

# Salts of the RNG seed sequences, so the streams are independent of each other.
_EXAMPLE_RNG, _PRIVATE_DRAW_RNG, _SHARED_DRAW_RNG = 1, 2, 3

_COST_OF = itemgetter(COST)


class LaneSnapshot(NamedTuple):
    """A lane at the step its stream ran out, without its examples (see `snapshot`)."""

    rank: int
    step: int
    lists: tuple[tuple[Entry, ...], ...]
    rng: Any
    chooser: dict[str, Any]


class Batch(NamedTuple):
    items: list[Any]
    bucket: int  # the bucket it came from
    drawn: int  # the bucket the draw named (== bucket unless a fallback happened)
    full: bool  # a full batch under the policy (False: a partial one)
    dur: Sequence[float]  # durations of its items
    tok: Sequence[int]  # tokens of its items


def lane_edges(plan: BucketPlan, lanes: int) -> np.ndarray:
    """(num_buckets, lanes - 1) inner token edges splitting each bucket at its sample's token
    quantiles (an empty bucket gets one lane, the others stay empty)."""
    levels = np.linspace(0.0, 1.0, lanes + 1)[1:-1]
    rows = []
    for b in plan.buckets:
        q = np.asarray(b.token_quantiles, dtype=np.float64)
        if len(q) < 2:
            rows.append(np.zeros(lanes - 1))
            continue
        rows.append(np.ceil(np.interp(levels, np.linspace(0.0, 1.0, len(q)), q)))
    return np.array(rows, dtype=np.int64).reshape(len(plan), lanes - 1)


#: Least buffer (examples) when the size comes from the plan.
MIN_AUTO_BUFFER = 20_000


def buffer_size(plan: BucketPlan, policy: BatchPolicy, config: SamplerConfig) -> int:
    """``config.buffer_size``, or the examples for ``buffer_batches`` batches per bucket."""
    if config.buffer_size is not None:
        return config.buffer_size
    batches_per_example = float(inflow_weights(plan, policy).sum())
    return max(MIN_AUTO_BUFFER, math.ceil(len(plan) * config.buffer_batches / batches_per_example))


def inflow_weights(plan: BucketPlan, policy: BatchPolicy) -> np.ndarray:
    """Expected batches flowing into each bucket per example read: occupancy / E[batch size].
    A bucket the plan's sample left (nearly) empty still gets 1% of the mean weight, so
    examples that land there anyway are drawn before the end of the epoch."""
    w = plan.occupancy / np.maximum(policy.expected_batch_size(plan), 1.0)
    return np.maximum(w, 0.01 * w.mean())


class LaneEngine:
    """The batches of one rank's data for one epoch (or forever, when infinite)."""

    def __init__(
        self,
        source: ExampleSource,
        plan: BucketPlan,
        policy: BatchPolicy,
        config: SamplerConfig,
        *,
        rank: int,
        epoch: int,
        lengths: LengthFn | None = None,
    ) -> None:
        self.source = source
        self.plan = plan
        self.policy = policy
        self.config = config
        self.rank = rank
        self.epoch = epoch
        self.prepare = ChunkPreparer(
            lengths or ExampleLengths(),
            config.filters if config.filters is not None else plan.filters,
            BucketAssigner(plan, config.assignment),
            policy,
        )
        batching = config.batching
        lanes = batching.lanes if isinstance(batching, SortedBatching) else 1
        self.buffer = BucketBuffer(len(plan), lane_edges(plan, lanes) if lanes > 1 else None)
        #: Sorted batching: the window a batch is drawn from, in batches (see `_take_window`).
        self.spread = batching.spread if isinstance(batching, SortedBatching) else 1.0
        self.rng = seeded_random([config.seed, epoch, rank, _EXAMPLE_RNG])
        draw_seed = (
            [config.seed, epoch, _SHARED_DRAW_RNG]
            if config.sync
            else [config.seed, epoch, rank, _PRIVATE_DRAW_RNG]
        )
        self.chooser = BucketChooser(inflow_weights(plan, policy), config.bucket_draw, draw_seed)
        lanes = self.buffer.lanes
        # Lane visiting order for a window starting in lane s: s, s+1, ..., top, s-1, ..., 0.
        self._orders = [(*range(s, lanes), *range(s - 1, -1, -1)) for s in range(lanes)]
        self.buffer_size = b = buffer_size(plan, policy, config)
        self.chunk = max(1, min(config.chunk_size, b // 8))
        self._start = min(b, max(self.chunk, math.ceil(config.start_fill * b)))
        self._grow = math.ceil((b - self._start) / config.ramp_steps) if config.ramp_steps else b
        # Progress: what state_dict saves. ``exhausted``: the last chunk is in the buffer.
        self.step = 0  # natural batches emitted
        self.data_epoch = epoch  # epoch of the data being read (differs when infinite)
        self.position: Any = None  # stream position after the last chunk put in the buffer
        self.exhausted = False
        self.examples_read = 0
        self.dropped: Counter[str] = Counter()  # filtered/unassigned examples by reason
        self.read_s = 0.0  # seconds spent inside the stream (for throughput accounting)
        self._reader: ChunkReader | None = None

    # ------------------------------------------------------------------ reading

    def _open_reader(self) -> ChunkReader:
        inner = SequentialReader(
            self.source,
            self.data_epoch,
            self.position,
            self.chunk,
            self.prepare,
            self.config.infinite,
        )
        if not self.config.concurrent:
            return inner
        queue_chunks = self.config.queue_chunks or -(-self.buffer_size // self.chunk)
        return ConcurrentReader(inner, queue_chunks)

    def target(self) -> int:
        """Buffer fill this step should start from."""
        return min(self.buffer_size, self._start + self.step * self._grow)

    def refill(self) -> None:
        """Read up to this step's target; beyond it while no bucket holds a full batch (a
        buffer too small for the policy grows rather than cut partial batches mid-epoch).
        The second check costs one scalar test per step: it looks at the next draw first."""
        target = self.target()
        buffer, policy = self.buffer, self.policy
        while not self.exhausted and buffer.size + self.chunk <= target:
            self._read_chunk()
        if self.exhausted:
            return
        d = self.chooser.peek()
        if buffer.counts[d] and policy.is_ready(d, int(buffer.counts[d]), int(buffer.cost_sums[d])):
            return
        while not self.exhausted and not policy.ready(buffer.counts, buffer.cost_sums).any():
            self._read_chunk()

    def _read_chunk(self) -> None:
        if self._reader is None:
            self._reader = self._open_reader()
        chunk = self._reader.next_chunk()
        if chunk is None:  # only for a stream that was empty from the start
            self.exhausted = True
            return
        p = chunk.prepared
        self.buffer.add(p.items, p.dur, p.tok, p.cost, p.bucket)
        self.position, self.data_epoch = chunk.position, chunk.epoch
        self.examples_read += chunk.read
        if not self.config.concurrent:  # a producer thread's reading is not this thread's time
            self.read_s += chunk.read_s
        if p.dropped:
            self.dropped.update(p.dropped)
        if chunk.last:
            self.exhausted = True
            self.close()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # ------------------------------------------------------------------ batches

    def next_batch(self) -> Batch | None:
        """The next natural batch, or None at the end of a finite epoch."""
        self.refill()
        buffer, policy = self.buffer, self.policy
        counts, sums = buffer.counts, buffer.cost_sums
        drawn, prefer_up = self.chooser.draw()
        if counts[drawn] and (
            self.exhausted or policy.is_ready(drawn, int(counts[drawn]), int(sums[drawn]))
        ):
            bucket = drawn
        else:  # not ready here: the nearest bucket that is (rare with inflow draws)
            ready = counts > 0 if self.exhausted else policy.ready(counts, sums)
            bucket = self.chooser.fallback(drawn, prefer_up, ready)
            if bucket < 0:
                return None
        return self.take_batch(bucket, drawn)

    def take_batch(self, bucket: int, drawn: int) -> Batch:
        """Cut a batch from ``bucket`` (non-empty); one step. ``drawn``: what the draw said."""
        buffer = self.buffer
        full = self.policy.is_ready(
            bucket, int(buffer.counts[bucket]), int(buffer.cost_sums[bucket])
        )
        take = self._take_window if buffer.lanes > 1 else self._take_random
        entries = take(bucket)
        self.step += 1
        _, durs, toks, items = zip(*entries, strict=True)  # transposed in C
        return Batch(list(items), bucket, drawn, full, durs, toks)

    def _take_window(self, bucket: int) -> list[Entry]:
        """A window of the bucket's lanes, from the lane of a uniformly random member upwards
        then downwards, oldest first within each lane, holding ``spread`` times the policy's
        batch; a random part of it (the excess) goes back to its lanes, the rest is the batch."""
        buffer, policy = self.buffer, self.policy
        lanes = buffer.lanes
        base = bucket * lanes
        lists = buffer.lists[base : base + lanes]
        # The lane of a uniformly random member: bisect the running lane sizes (C loops).
        cum = list(accumulate(map(len, lists)))
        start = bisect_right(cum, int(self.rng.random() * cum[-1]))
        order = self._orders[start]
        k = policy.size(bucket)
        if k is None:
            k = policy.take(
                bucket, map(_COST_OF, chain.from_iterable(map(lists.__getitem__, order)))
            )
        want = max(k, math.ceil(self.spread * k))
        window: list[Entry] = []
        visited: list[tuple[int, int]] = []  # (lane, entries taken from it), in window order
        for j in order:
            lst = lists[j]
            n = min(len(lst), want - len(window))
            window += lst[:n]
            del lst[:n]
            visited.append((j, n))
            if len(window) == want:
                break
        if len(window) > k:
            # Leave out a random excess; the rest keeps window order, and the policy cuts it
            # again since leaving out can raise the batch's longest example.
            n, rand = len(window), self.rng.random
            left_out: set[int] = set()
            while len(left_out) < n - k:
                left_out.add(int(rand() * n))
            out = sorted(left_out)
            kept = list(chain.from_iterable(range(a + 1, b) for a, b in pairwise([-1, *out, n])))
            if not policy.holds(bucket, [window[i][COST] for i in kept]):
                k = max(1, policy.take(bucket, (window[i][COST] for i in kept)))
                out = sorted(out + kept[k:])
                kept = kept[:k]
            self._put_back(lists, visited, window, out)
            window = [window[i] for i in kept]
        buffer.removed(bucket, len(window), sum(map(_COST_OF, window)))
        return window

    @staticmethod
    def _put_back(
        lists: list[list[Entry]],
        visited: list[tuple[int, int]],
        window: list[Entry],
        back: list[int],
    ) -> None:
        """Return window entries ``back`` (ascending) to the front of the lanes they came from,
        in their old order."""
        bounds = list(accumulate(n for _, n in visited))
        by_lane: dict[int, list[Entry]] = {}
        for i in back:
            j = visited[bisect_right(bounds, i)][0]
            by_lane.setdefault(j, []).append(window[i])
        for j, entries in by_lane.items():
            lists[j][0:0] = entries

    def _take_random(self, bucket: int) -> list[Entry]:
        """lhotse's batch: entries in random order until the policy's batch is full. Each
        candidate leaves the bucket by swap-remove (O(1)); the one that did not fit goes back."""
        lst = self.buffer.lists[bucket]
        rand = self.rng.random
        k = self.policy.size(bucket)
        if k is not None:
            picks = self.rng.sample(range(len(lst)), min(k, len(lst)))
            entries = [lst[i] for i in picks]
            for i in sorted(picks, reverse=True):
                lst[i] = lst[-1]
                lst.pop()
            self.buffer.removed(bucket, len(entries), sum(map(_COST_OF, entries)))
            return entries
        drawn: list[Entry] = []

        def candidates() -> Iterator[int]:
            while lst:
                i = int(rand() * len(lst))
                entry = lst[i]
                lst[i] = lst[-1]
                lst.pop()
                drawn.append(entry)
                yield entry[COST]

        k = self.policy.take(bucket, candidates())
        lst.extend(drawn[k:])  # drawn but not taken
        entries = drawn[:k]
        self.buffer.removed(bucket, len(entries), sum(map(_COST_OF, entries)))
        return entries

    def drain(self) -> list[Batch]:
        """All remaining natural batches (call once the stream is exhausted)."""
        out = []
        while (batch := self.next_batch()) is not None:
            out.append(batch)
        return out

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> LaneSnapshot:
        """What another rank needs to continue this lane once its data ran out: lengths and
        costs of the buffered examples (not the examples), RNG states, the step."""
        if not self.exhausted:
            raise RuntimeError("a lane is snapshot once its stream is exhausted")
        return LaneSnapshot(
            rank=self.rank,
            step=self.step,
            lists=tuple(tuple((e[0], e[1], e[2], None) for e in lst) for lst in self.buffer.lists),
            rng=self.rng.getstate(),
            chooser=self.chooser.state_dict(),
        )

    def restore_snapshot(self, snap: LaneSnapshot) -> None:
        """Continue from ``snap`` (a shadow of another rank's lane; items are None)."""
        self.close()
        self.exhausted = True
        self.step = snap.step
        self.rng.setstate(snap.rng)
        self.chooser.load_state_dict(snap.chooser)
        self.buffer.restore([list(x) for x in snap.lists])

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "epoch": self.epoch,
            "step": self.step,
            "data_epoch": self.data_epoch,
            "position": _jsonable(self.position),
            "exhausted": self.exhausted,
            "examples_read": self.examples_read,
            "dropped": dict(self.dropped),
            "rng": random_state(self.rng),
            "chooser": self.chooser.state_dict(),
            # Per (bucket, lane) list, its examples in order.
            "lists": [[encode_item(e[ITEM]) for e in lst] for lst in self.buffer.lists],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["rank"] != self.rank or state["epoch"] != self.epoch:
            raise ValueError(
                f"sampler state is for rank {state['rank']} epoch {state['epoch']}, "
                f"this engine is rank {self.rank} epoch {self.epoch}"
            )
        self.close()
        self.step = int(state["step"])
        self.data_epoch = int(state["data_epoch"])
        self.position = state["position"]
        self.exhausted = bool(state["exhausted"])
        self.examples_read = int(state["examples_read"])
        self.dropped = Counter(state["dropped"])
        set_random_state(self.rng, state["rng"])
        self.chooser.load_state_dict(state["chooser"])
        lists: list[list[Entry]] = []
        lanes = self.buffer.lanes
        for i, rows in enumerate(state["lists"]):
            items = [decode_item(x) for x in rows]
            p = self.prepare(items)
            if len(p.items) != len(items) or np.any(self.buffer.lane_index(p.bucket, p.tok) != i):
                raise ValueError(
                    f"buffered examples of bucket {i // lanes} no longer land there "
                    f"({p.dropped}): resume with the plan and config the state was saved with"
                )
            lists.append(
                list(zip(p.cost.tolist(), p.dur.tolist(), p.tok.tolist(), items, strict=True))
            )
        self.buffer.restore(lists)


def _jsonable(position: Any) -> Any:
    """NamedTuple/tuple positions become lists (what they are after a JSON round trip)."""
    if isinstance(position, tuple):
        return [_jsonable(x) for x in position]
    return position
