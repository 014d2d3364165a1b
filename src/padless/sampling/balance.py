"""The end of a finite epoch with several ranks: equal batch counts and synchronized drains,
without communication.

Left alone, ranks end an epoch after different numbers of batches (their data and batch sizes
differ) and a DDP job hangs on the rank with one more; and while buffers drain, each rank's
buckets run empty at different steps, so synchronized bucket choice falls apart (lhotse: 38%
agreement near the end of an epoch). padless fixes both from one piece of shared knowledge:

- **Replay.** In a background thread started with the epoch, each rank runs the other ranks'
  engines over their metadata (same code, seeds and data as those ranks) up to the step their
  stream runs out, and keeps a `LaneSnapshot` there: the lengths of what is left in the
  buffer and the RNG states, not the examples. Cost: every rank reads every rank's metadata
  once per epoch, ``(W-1)/W`` of the dataset's metadata (a lane costs what the rank's own
  pass costs: a few seconds per million streamed examples on one core), overlapped with
  training; memory: ``W`` buffers of lengths at the epoch's end.
- **Joint drain.** When its own stream runs out, a rank continues every lane (its own with
  the real examples, the others from their snapshots) to the step ``S*`` where the last rank's
  stream ran out. There every rank knows what every lane holds, and all lanes drain together,
  bucket by bucket: bucket ``b`` gets ``m(b)`` steps, the most batches any lane needs for its
  content of ``b``; the steps are shuffled with the shared RNG; each lane cuts its content of
  ``b`` into exactly ``m(b)`` batches (halving its largest ones where it holds less than
  others), so at every step every lane uses the same bucket, and all lanes end together. When
  that takes more than ``joint_drain_tolerance`` (50%) more steps than draining separately
  (ranks whose remaining data differ a lot), the lanes drain separately instead. A lane
  with fewer examples of ``b`` than ``m(b)`` fills the missing steps with pieces split off its
  largest batches of other buckets: the only steps where ranks disagree. The price: some drain
  batches are smaller than the policy allows (~7% fewer examples per drain batch with 8 ranks
  on a Canary-like mix), for the buffer's last ``B / batch size`` steps of an epoch.
- **Equal counts** follow: every lane yields ``S* + sum(m(b))`` batches. Without ``sync`` (or
  when some lane holds fewer examples than the joint drain has steps) each lane drains on its
  own, giving its ``batches`` and ``capacity`` (batches before its stream ran out plus the
  examples left then: the most it can yield by splitting), and every rank yields
  ``T = min(max(batches), min(capacity))``: a rank short of ``T`` splits its last batches into
  contiguous pieces (a piece respects every batch limit); one above it drops its smallest
  batches and counts them (``rank_balance``).
- **Lending.** When that would drop examples (a rank with little or no data caps ``T`` for
  all: 17 examples on 16 ranks, two of them empty, dropped all 17), the ranks lend instead
  (`plan_lending`, computed from the shared lengths, so every rank agrees): for each count
  from ``T`` up, a rank's extra batches go to ranks short of batches, pieces of a rank's
  batches to ranks with fewer examples than batches to yield, and the count that drops the
  fewest examples wins. A borrowing rank reads the lender's data again (its replay kept
  lengths only), so lending costs one more metadata pass per lender, only in this case.
  What still drops is what no rank can take without breaking a batch limit: e.g. with batch
  size 1, ``N`` examples on ``W`` ranks drop ``N mod W``; with 17 examples in two buckets on
  16 ranks, the one rank holding both keeps one batch and drops the other.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from typing import NamedTuple

import numpy as np

from padless.sampling.buffer import COST, DUR, TOK, Entry
from padless.sampling.config import SortedBatching
from padless.sampling.engine import Batch, LaneEngine, LaneSnapshot
from padless.sampling.policies import BatchPolicy


class LaneCount(NamedTuple):
    batches: int  # batches of the epoch (natural before S*, joint after)
    capacity: int  # most batches reachable by splitting: batches before exhaustion + examples left


class Stopped(Exception):
    """Replay was cancelled (the sampler shut down)."""


def run_to_exhaustion(engine: LaneEngine, stop: threading.Event | None = None) -> LaneSnapshot:
    """Run a fresh engine until its stream has run out (metadata only); snapshot it there."""
    try:
        while True:
            engine.refill()
            if engine.exhausted or engine.next_batch() is None:
                break
            if stop is not None and engine.step % 64 == 0 and stop.is_set():
                raise Stopped
        return engine.snapshot()
    finally:
        engine.close()


@dataclass
class DrainPlan:
    """A rank's batches from the step its stream ran out to the end of the epoch."""

    batches: list[Batch]  # final: split or cut to the agreed count
    dropped: list[Batch]  # batches of this rank dropped to reach the target
    counts: dict[int, LaneCount]  # every lane's count
    target: int  # the agreed number of batches per rank
    joint_from: int  # S*: the step the joint drain started at
    lent: int = 0  # examples of this rank's batches that another rank yields instead
    borrowed: int = 0  # examples of other ranks' batches this rank yields


def plan_drain(
    own: LaneEngine,
    others: Mapping[int, LaneSnapshot],
    shadow: Callable[[LaneSnapshot], LaneEngine],
    *,
    joint: bool,
    tolerance: float = 0.5,
    fresh: Callable[[int], LaneEngine] | None = None,
) -> DrainPlan:
    """This rank's batches to the end of the epoch; ``own`` has just run out of data (see the
    module docstring). Every rank computes the same counts and the same choice between the
    joint drain and separate drains: joint (with ``joint``) unless it takes more than
    ``tolerance`` more steps than draining separately (ranks whose data differ a lot).
    ``fresh(rank)``: a new engine of another lane, run again to borrow its real batches when
    equal counts would otherwise drop examples (`plan_lending`)."""
    lanes = {own.rank: own} | {r: shadow(snap) for r, snap in others.items()}
    ranks = sorted(lanes)
    start = {r: lanes[r].step for r in ranks}
    capacity = {r: lanes[r].step + lanes[r].buffer.size for r in ranks}
    joint_from = max(start.values())
    head: dict[int, list[Batch]] = {r: [] for r in ranks}
    for r in ranks:  # every lane on its own up to S*, the step the last stream ran out
        eng = lanes[r]
        while eng.step < joint_from and (batch := eng.next_batch()) is not None:
            head[r].append(batch)
    at_s = {r: lanes[r].snapshot() for r in ranks}  # lengths only: what every rank can know
    tails = {r: head[r] + shadow(at_s[r]).drain() for r in ranks}  # lengths only
    separate = {r: start[r] + len(tails[r]) for r in ranks}
    counts = {r: LaneCount(separate[r], capacity[r]) for r in ranks}
    target = target_count(list(counts.values()))
    if joint and all(lanes[r].step == joint_from for r in ranks):
        steps = _joint_steps({r: shadow(at_s[r]) for r in ranks}, own)
        if steps is not None and len(steps.buckets) <= (1 + tolerance) * (target - joint_from):
            mine = head[own.rank] + _joint_batches(own, steps)
            total = joint_from + len(steps.buckets)
            joint_counts = {r: LaneCount(total, capacity[r]) for r in ranks}
            return DrainPlan(mine, [], joint_counts, total, joint_from)
    # Each lane drains on its own; counts are equalized by splitting the last batches, and
    # where that would drop examples, by lending whole batches from lanes with too many to
    # lanes with too few.
    mine = head[own.rank] + own.drain()
    outputs = target - start[own.rank]
    if outputs < 0:
        raise RuntimeError(
            f"rank {own.rank} yielded {start[own.rank]} batches before its data ran out, more "
            f"than another rank can yield in all ({target}): the ranks' data are too unequal "
            "to balance (give every rank at least a buffer's worth of examples)"
        )
    sizes = {r: [len(b.items) for b in tails[r]] for r in ranks}
    lending = None if fresh is None else plan_lending(sizes, start, target)
    if lending is None:  # the same decision on every rank: computed from shared lengths
        return DrainPlan(*_fit(mine, outputs), counts, target, joint_from)
    assert fresh is not None
    outputs = lending.target - start[own.rank]
    return _lend(own.rank, mine, outputs, tails, lending, fresh, joint_from, counts)


#: A piece of a lane's drain batch: (lane, batch index, first item, end item).
Piece = tuple[int, int, int, int]


class Lending(NamedTuple):
    """Who yields which pieces of which lane's drain batches (the batches after the step its
    stream ran out), so that every lane reaches the target count."""

    target: int
    hold: dict[int, list[Piece]]  # lane -> the pieces it yields (its own and borrowed)
    dropped: dict[int, list[int]]  # lane -> its batches nobody yields
    dropped_examples: int


def plan_lending(
    sizes: Mapping[int, Sequence[int]], start: Mapping[int, int], target: int
) -> Lending | None:
    """Equal counts with the fewest examples dropped, or None when lending saves nothing.

    Without lending, the target is at most the smallest lane's capacity, and a lane holding
    more drain batches than it needs drops its smallest ones: one rank with nothing left
    makes every rank drop everything. With lending, each target ``T`` from ``target`` to the
    most batches any lane yields is tried: every lane needs ``T - start`` drain batches; a
    lane with more batches offers its smallest extra ones, and lanes short of batches take
    them (largest first, one per lane per round); a lane that still holds fewer examples than
    it needs batches gets pieces split off the largest batches of lanes with examples to
    spare; then each lane splits its batches up to its count. What no lane takes is dropped.
    The ``T`` with the fewest examples dropped wins (the smallest on ties).
    """
    plain = _allocate(sizes, start, target, lend=False)
    if plain is None or plain.dropped_examples == 0:
        return None
    best: Lending | None = None
    highest = max(start[r] + len(sizes[r]) for r in sizes)
    for t in range(target, highest + 1):
        option = _allocate(sizes, start, t, lend=True)
        if option is not None and (best is None or option.dropped_examples < best.dropped_examples):
            best = option
            if best.dropped_examples == 0:
                break
    if best is None or best.dropped_examples >= plain.dropped_examples:
        return None
    return best


def _allocate(
    sizes: Mapping[int, Sequence[int]], start: Mapping[int, int], target: int, *, lend: bool
) -> Lending | None:
    ranks = sorted(sizes)
    need = {r: target - start[r] for r in ranks}
    if any(n < 0 for n in need.values()):
        return None
    hold: dict[int, list[Piece]] = {}
    surplus: list[Piece] = []
    for r in ranks:  # extra batches on offer: the smallest ones
        n = len(sizes[r])
        extra = set(sorted(range(n), key=lambda i: sizes[r][i])[: max(0, n - need[r])])
        hold[r] = [(r, i, 0, sizes[r][i]) for i in range(n) if i not in extra]
        surplus.extend((r, i, 0, sizes[r][i]) for i in sorted(extra))
    if lend:
        surplus.sort(key=lambda p: (p[2] - p[3], p))  # largest first
        short = [r for r in ranks if len(hold[r]) < need[r]]
        while surplus and short:
            for r in list(short):
                if surplus:
                    hold[r].append(surplus.pop(0))
                if len(hold[r]) >= need[r]:
                    short.remove(r)
        for r in ranks:  # too few examples to split into its count: pieces of others' batches
            missing = need[r] - _examples(hold[r])
            for lender in ranks:
                if missing <= 0:
                    break
                spare = _examples(hold[lender]) - need[lender]
                while spare > 0 and missing > 0:
                    j = max(
                        range(len(hold[lender])),
                        key=lambda k: hold[lender][k][3] - hold[lender][k][2],
                    )
                    lane, i, a, b = hold[lender][j]
                    m = min(spare, missing, b - a - 1)
                    if m <= 0:
                        break
                    hold[lender][j] = (lane, i, a, b - m)
                    hold[r].append((lane, i, b - m, b))
                    spare -= m
                    missing -= m
    if any(_examples(hold[r]) < need[r] for r in ranks):
        return None
    dropped: dict[int, list[int]] = {r: [] for r in ranks}
    for r, i, _, _ in surplus:
        dropped[r].append(i)
    lost = _examples(surplus)
    return Lending(target, hold, {r: sorted(d) for r, d in dropped.items()}, lost)


def _examples(pieces: Sequence[Piece]) -> int:
    return sum(b - a for _, _, a, b in pieces)


def _lend(
    rank: int,
    mine: list[Batch],
    outputs: int,
    tails: Mapping[int, list[Batch]],
    lending: Lending,
    fresh: Callable[[int], LaneEngine],
    joint_from: int,
    counts: dict[int, LaneCount],
) -> DrainPlan:
    """This rank's ``outputs`` drain batches under ``lending``: the pieces it holds (those of
    other lanes read again from their data: the shadows hold lengths only), split where it
    still has fewer batches than its count."""
    held = lending.hold[rank]
    lenders = sorted({lane for lane, *_ in held if lane != rank})
    batches = {rank: mine} | {d: _real_tail(fresh(d), joint_from, tails[d]) for d in lenders}
    pieces = [_slice(batches[lane][i], a, b) for lane, i, a, b in held]
    lent = sum(
        _examples([p for p in lending.hold[r] if p[0] == rank]) for r in lending.hold if r != rank
    )
    return DrainPlan(
        split_tail(pieces, outputs),
        [mine[i] for i in lending.dropped[rank]],
        counts,
        lending.target,
        joint_from,
        lent=lent,
        borrowed=_examples([p for p in held if p[0] != rank]),
    )


def _slice(batch: Batch, a: int, b: int) -> Batch:
    if (a, b) == (0, len(batch.items)):
        return batch
    return Batch(batch.items[a:b], batch.bucket, batch.drawn, False, batch.dur[a:b], batch.tok[a:b])


def _real_tail(engine: LaneEngine, joint_from: int, shadow_tail: list[Batch]) -> list[Batch]:
    """Another lane's drain batches with their examples: its engine run again over its data
    to exhaustion, on to S*, then drained; the same batches its shadow computed (checked)."""
    try:
        while True:
            engine.refill()
            if engine.exhausted or engine.next_batch() is None:
                break
        tail = []
        while engine.step < joint_from and (batch := engine.next_batch()) is not None:
            tail.append(batch)
        tail += engine.drain()
    finally:
        engine.close()
    if [(b.bucket, len(b.items)) for b in tail] != [(b.bucket, len(b.items)) for b in shadow_tail]:
        raise RuntimeError(f"lane {engine.rank} read again gave other batches than its replay")
    return tail


def _fit(batches: list[Batch], outputs: int) -> tuple[list[Batch], list[Batch]]:
    """(batches turned into exactly ``outputs``, batches dropped): split the last ones, or
    drop the smallest ones (the fewest examples lost)."""
    if outputs >= len(batches):
        return split_tail(batches, outputs), []
    order = sorted(range(len(batches)), key=lambda i: len(batches[i].items))
    drop = set(order[: len(batches) - outputs])
    return [b for i, b in enumerate(batches) if i not in drop], [batches[i] for i in sorted(drop)]


def _drain_order(engine: LaneEngine, bucket: int) -> list[Entry]:
    """A bucket's remaining entries in the order its drain batches are cut from: by output
    then input length (sorted batching) or shuffled by the lane's RNG (random batching)."""
    lanes = engine.buffer.lanes
    entries = [e for lst in engine.buffer.lists[bucket * lanes : (bucket + 1) * lanes] for e in lst]
    if isinstance(engine.config.batching, SortedBatching):
        entries.sort(key=_length_key)
    else:
        engine.rng.shuffle(entries)
    return entries


def _length_key(e: Entry) -> tuple[int, float]:
    return e[TOK], e[DUR]


def _greedy_groups(policy: BatchPolicy, bucket: int, entries: list[Entry]) -> list[list[Entry]]:
    """Consecutive batches, each as large as the policy allows."""
    groups = []
    i = 0
    while i < len(entries):
        k = max(1, policy.take(bucket, (e[COST] for e in entries[i:])))
        groups.append(entries[i : i + k])
        i += k
    return groups


class _JointSteps(NamedTuple):
    buckets: list[int]  # the bucket of every joint step, shared by all lanes
    groups: dict[int, int]  # batches per bucket, m(b)


def _joint_steps(lanes: Mapping[int, LaneEngine], own: LaneEngine) -> _JointSteps | None:
    """The joint drain's bucket sequence, from every lane's shadow at S*: bucket b gets m(b)
    steps, the most batches any lane needs for its content of b; the steps are shuffled with
    a copy of the shared RNG. None when some lane holds fewer examples than there are steps."""
    policy = own.policy
    need = np.zeros(len(own.plan), dtype=np.int64)
    for r in sorted(lanes):
        eng = lanes[r]
        for b in np.flatnonzero(eng.buffer.counts).tolist():
            order = _drain_order(eng, b)  # consumes lane r's RNG as the lane itself will
            need[b] = max(need[b], len(_greedy_groups(policy, b, order)))
    total = int(need.sum())
    if any(lanes[r].buffer.size < total for r in lanes):
        return None
    sequence = [b for b in range(len(need)) for _ in range(int(need[b]))]
    rng = random.Random()
    rng.setstate(own.chooser.rng.getstate())  # shared seed, same state on every rank at S*
    rng.shuffle(sequence)
    return _JointSteps(sequence, {b: int(need[b]) for b in range(len(need)) if need[b]})


def _joint_batches(own: LaneEngine, steps: _JointSteps) -> list[Batch]:
    """This lane's batch for every joint step: its content of bucket b cut into m(b) batches;
    where it has fewer examples in b than steps, a piece split off its largest batch elsewhere
    fills the step (the only steps where lanes disagree)."""
    policy = own.policy
    # This lane's content in drain order, consuming its RNG exactly as its shadow did.
    orders = {b: _drain_order(own, b) for b in np.flatnonzero(own.buffer.counts).tolist()}
    groups: dict[int, list[list[Entry]]] = {}
    for b, m in steps.groups.items():
        order = orders.get(b, [])
        g = _greedy_groups(policy, b, order)
        while len(g) < min(m, len(order)):  # more, smaller batches: halve the largest
            j = max(range(len(g)), key=lambda i: len(g[i]))
            g[j : j + 1] = [g[j][: len(g[j]) // 2], g[j][len(g[j]) // 2 :]]
        groups[b] = g
    holes = sum(m - len(groups[b]) for b, m in steps.groups.items())
    spare: list[tuple[int, list[Entry]]] = []
    while len(spare) < holes:  # split pieces off the largest batch, allotted or spare
        b, j = max(
            [(x, i) for x in groups for i in range(len(groups[x]))],
            key=lambda xi: len(groups[xi[0]][xi[1]]),
        )
        s = max(range(len(spare)), key=lambda i: len(spare[i][1]), default=None)
        if s is not None and len(spare[s][1]) > len(groups[b][j]):
            source, largest = spare[s]
            spare[s] = (source, largest[: len(largest) // 2])
            spare.append((source, largest[len(largest) // 2 :]))
            continue
        largest = groups[b][j]
        groups[b][j] = largest[: len(largest) // 2]
        spare.append((b, largest[len(largest) // 2 :]))
    rng = own.rng
    for batches in groups.values():
        rng.shuffle(batches)  # not every bucket's drain from short to long
    out = []
    for bucket in steps.buckets:
        if groups[bucket]:
            entries, source = groups[bucket].pop(), bucket
        else:
            source, entries = spare.pop()
        _, durs, toks, items = zip(*entries, strict=True)
        out.append(Batch(list(items), source, bucket, False, durs, toks))
    own.step += len(out)
    own.buffer.restore([[] for _ in own.buffer.lists])
    return out


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
    """Snapshots of the other ranks' lanes at exhaustion, computed in a daemon thread;
    ``result()`` waits for them. A `ReplayCache` shared by samplers in one process (the
    benchmark runs every rank in-process) computes each lane once."""

    def __init__(
        self,
        lanes: Sequence[int],
        make_engine: Callable[[int], LaneEngine],
        cache: ReplayCache | None = None,
        key: object = None,
    ) -> None:
        self.lanes = list(lanes)
        self._make = make_engine
        self._cache = cache
        self._key = key
        self._snapshots: dict[int, LaneSnapshot] = {}
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
                if self._cache is not None:
                    snap = self._cache.get((self._key, lane), partial(self._compute, lane))
                else:
                    snap = self._compute(lane)
                self._snapshots[lane] = snap
        except Stopped:
            pass
        except BaseException as err:
            self._error = err
        finally:
            self._done.set()

    def _compute(self, lane: int) -> LaneSnapshot:
        return run_to_exhaustion(self._make(lane), self._stop)

    def result(self) -> dict[int, LaneSnapshot]:
        self._done.wait()
        if self._error is not None:
            raise RuntimeError("replaying the other ranks' lanes failed") from self._error
        if len(self._snapshots) != len(self.lanes):
            raise RuntimeError("the replay was stopped before it finished")
        return dict(self._snapshots)

    def close(self, timeout: float = 30.0) -> None:
        """Stop replaying and join the thread (it checks the stop event every 64 batches)."""
        self._stop.set()
        self._thread.join(timeout)


class ReplayCache:
    """Lane snapshots computed once per key for every sampler of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[object, LaneSnapshot] = {}
        self._pending: dict[object, threading.Event] = {}

    def get(self, key: object, compute: Callable[[], LaneSnapshot]) -> LaneSnapshot:
        with self._lock:
            if key in self._values:
                return self._values[key]
            event = self._pending.get(key)
            owner = event is None
            if owner:
                event = self._pending[key] = threading.Event()
        assert event is not None
        if not owner:
            event.wait()
            with self._lock:
                if key in self._values:
                    return self._values[key]
            return compute()  # the owner failed or stopped: compute it here
        try:
            value = compute()
            with self._lock:
                self._values[key] = value
            return value
        finally:
            with self._lock:
                self._pending.pop(key, None)
            event.set()
