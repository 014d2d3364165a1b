"""The dynamic bucketing sampler: batches of `Example`s (metadata only) for one rank.

Usage, one sampler per DDP rank, each reading its own part of the data::

    from padless.sampling.plan import BucketPlan
    from padless.sampling.policies import DurationBudget
    from padless.sampling.sampler import DynamicBucketingSampler, SamplerConfig
    from padless.sampling.sources import manifest_sources

    sampler = DynamicBucketingSampler(
        manifest_sources(["train.jsonl"], seed=0),
        BucketPlan.load("plan.json"),
        DurationBudget(360.0),              # or FixedBatchSize(n), BucketBatchSizes.load(...)
        SamplerConfig(seed=0, concurrent=True),
        rank=rank, world_size=world_size,
    )
    loader = DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=4)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in loader: ...
    checkpoint["sampler"] = sampler.state_dict(consumed_steps=steps_done_this_epoch)
    ...
    sampler.load_state_dict(checkpoint["sampler"])   # the next iteration continues exactly

What it guarantees (tests in tests/sampling):

- finite epochs: every example that passes the filters appears exactly once per epoch across
  ranks, and every rank yields the same number of batches (`padless.sampling.balance`); the
  only examples dropped are counted (``dropped``);
- with ``sync`` every rank draws the same bucket at every step and takes it wherever it holds a
  full batch, else the nearest bucket that does (`padless.sampling.sync`); once every rank's
  data has run out, the ranks drain their buffers jointly, in the same bucket at every step but
  a few (`padless.sampling.balance`);
- batch limits of the policy hold for every batch;
- ``state_dict()`` / ``load_state_dict()`` resume with exactly the batches an uninterrupted run
  would have yielded, in every mode, in time that depends on the buffer size only;
- ``concurrent=True`` changes when reading happens, never which batches come out.

How a step works is in `padless.sampling.engine`; the design and measured numbers in
docs/sampling.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from padless.data.errors import NoExamplesError
from padless.sampling.balance import LaneCount, Replay, ReplayCache, plan_drain
from padless.sampling.codec import decode_item, encode_item
from padless.sampling.config import SamplerConfig
from padless.sampling.engine import Batch, LaneEngine, LaneSnapshot
from padless.sampling.lengths import LengthFn
from padless.sampling.plan import BucketPlan
from padless.sampling.policies import BatchPolicy
from padless.sampling.sources import SourceFactory
from padless.sampling.stats import SamplerStats

__all__ = ["DynamicBucketingSampler", "SamplerConfig"]

log = logging.getLogger("padless.sampling")

STATE_FORMAT = "padless.sampler_state"
STATE_VERSION = 1


class DynamicBucketingSampler:
    """Yields ``list[Example]`` batches of this rank's data; see the module docstring."""

    def __init__(
        self,
        sources: SourceFactory,
        plan: BucketPlan,
        policy: BatchPolicy,
        config: SamplerConfig | None = None,
        *,
        rank: int = 0,
        world_size: int = 1,
        lengths: LengthFn | None = None,
        replay_cache: ReplayCache | None = None,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.sources = sources
        self.plan = plan
        self.policy = policy
        self.config = config or SamplerConfig()
        self.rank = rank
        self.world_size = world_size
        self.lengths = lengths
        #: Shares replayed lanes between samplers of one process (the in-process benchmark).
        self.replay_cache = replay_cache
        policy.expected_batch_size(plan)  # validates a per-bucket table against the plan
        self._epoch = 0
        self._loaded: dict[str, Any] | None = None
        self._run: _EpochRun | None = None
        self.stats = SamplerStats(len(plan))

    # ------------------------------------------------------------------ public API

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration reads (seeds the split, the shuffles and the draws).
        A state loaded with `load_state_dict` still decides where the next iteration starts."""
        if self._loaded is not None and self._loaded["epoch"] != epoch:
            log.warning(
                "set_epoch(%d) while a loaded state resumes epoch %d: the state wins",
                epoch,
                self._loaded["epoch"],
            )
        self._epoch = epoch

    @property
    def epoch(self) -> int:
        return self._run.epoch if self._run is not None else self._epoch

    def __iter__(self) -> Iterator[list[Any]]:
        if self._run is not None:
            self._run.close()
        state, self._loaded = self._loaded, None
        epoch = state["epoch"] if state is not None else self._epoch
        self._run = _EpochRun(self, epoch, state)
        self.stats = SamplerStats(len(self.plan))
        return self._iterate(self._run)

    def _iterate(self, run: _EpochRun) -> Iterator[list[Any]]:
        try:
            while (batch := run.next()) is not None:
                self.stats.record(batch.bucket, batch.drawn, batch.dur, batch.tok, batch.full)
                yield batch.items
            self._report_losses(run)
        finally:
            run.close()

    def _report_losses(self, run: _EpochRun) -> None:
        """At the end of an epoch: an error when everything this rank read was dropped (a run
        must not "succeed" with no batches), a warning when more than half was."""
        dropped = run.dropped()
        lost = dropped.total()
        if not lost:
            return
        read = run.engine.examples_read
        reasons = ", ".join(f"{n:,} {reason}" for reason, n in dropped.most_common())
        if run.steps == 0:
            raise NoExamplesError(
                f"rank {self.rank}, epoch {run.epoch}: all {lost:,} examples were dropped "
                f"({reasons})"
            )
        if 2 * lost > read:
            log.warning(
                "rank %d, epoch %d: %s of %s examples read were dropped: %s",
                self.rank,
                run.epoch,
                f"{lost:,}",
                f"{read:,}",
                reasons,
            )

    def close(self) -> None:
        """Stop background threads of the current iteration (also done when it ends)."""
        if self._run is not None:
            self._run.close()

    @property
    def dropped(self) -> Counter[str]:
        """Examples not yielded this epoch, by reason (filters, assignment, rank balance)."""
        return self._run.dropped() if self._run is not None else Counter()

    @property
    def steps(self) -> int:
        """Batches yielded so far this epoch."""
        return self._run.steps if self._run is not None else 0

    @property
    def last_batch(self) -> Batch | None:
        """The last batch yielded, with its bucket, the drawn bucket and its lengths."""
        return self._run.recent[-1] if self._run is not None and self._run.recent else None

    @property
    def read_seconds(self) -> float:
        """Seconds this iteration spent inside the source, in line (0 with a concurrent
        reader, which reads in its own thread): sampler time is the rest."""
        return self._run.engine.read_s if self._run is not None else 0.0

    def state_dict(self, consumed_steps: int | None = None) -> dict[str, Any]:
        """Everything needed to continue exactly after the last batch yielded, or after
        ``consumed_steps`` batches of this epoch when a DataLoader prefetched further (the
        batches in between are stored and yielded again first; at most
        ``config.resume_lookback`` of them)."""
        if self._run is None:
            if self._loaded is not None:
                return self._loaded
            return self._header() | {"epoch": self._epoch, "fresh": True}
        if self._run.finished and consumed_steps in (None, self._run.steps):
            # Nothing of this epoch is left: resuming starts the next one.
            return self._header() | {"epoch": self._run.epoch + 1, "fresh": True}
        return self._header() | self._run.state_dict(consumed_steps)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` at the next iteration."""
        header = self._header()
        if state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
            raise ValueError(f"not a padless sampler state (format {state.get('format')!r})")
        for key in ("plan", "config", "policy", "rank", "world_size"):
            if state.get(key) != header[key]:
                raise ValueError(
                    f"sampler state has {key}={state.get(key)!r}, this sampler {header[key]!r}: "
                    "resume with the same plan, policy, config, rank and world size"
                )
        if self._run is not None:
            self._run.close()
            self._run = None
        if state.get("fresh"):
            self._epoch, self._loaded = int(state["epoch"]), None
        else:
            self._loaded = state

    def cache_key(self) -> str:
        """What decides a lane's batches besides its rank and epoch."""
        h = self._header()
        return "|".join(str(h[k]) for k in ("plan", "config", "policy", "world_size"))

    def _header(self) -> dict[str, Any]:
        # Settings that change when reading happens or what is remembered, not the batches.
        cfg = replace(self.config, concurrent=False, queue_chunks=None, resume_lookback=0).to_json()
        digest = hashlib.sha1(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "plan": self.plan.fingerprint(),
            "config": digest[:16],
            "policy": json.dumps(self.policy.describe(), sort_keys=True),
            "rank": self.rank,
            "world_size": self.world_size,
        }

    def make_engine(self, lane: int, epoch: int, *, concurrent: bool | None = None) -> LaneEngine:
        """A fresh engine over rank ``lane``'s data (this rank's, or another's for the replay)."""
        config = self.config if concurrent is None else replace(self.config, concurrent=concurrent)
        return LaneEngine(
            self.sources(rank=lane, world_size=self.world_size),
            self.plan,
            self.policy,
            config,
            rank=lane,
            epoch=epoch,
            lengths=self.lengths,
        )


class _EpochRun:
    """One iteration of the sampler: the engine, balancing, and batches waiting to go out."""

    def __init__(
        self, owner: DynamicBucketingSampler, epoch: int, state: dict[str, Any] | None
    ) -> None:
        cfg = owner.config
        self.owner = owner
        self.epoch = epoch
        self.engine = owner.make_engine(owner.rank, epoch)
        self.steps = 0
        self.pending: deque[Batch] = deque()  # batches to yield before asking the engine
        self.recent: deque[Batch] = deque(maxlen=max(1, cfg.resume_lookback))
        self.drained = False
        self.balance_dropped: Counter[str] = Counter()
        self.lane_counts: dict[int, LaneCount] | None = None
        self.finished = False
        if state is not None and not state.get("fresh"):
            self._load(state)
        self.balancing = cfg.balance_ranks and owner.world_size > 1 and not cfg.infinite
        self.replay: Replay | None = None
        if self.balancing and not self.drained:
            others = [r for r in range(owner.world_size) if r != owner.rank]
            self.replay = Replay(
                others,
                lambda lane: owner.make_engine(lane, epoch, concurrent=False),
                cache=owner.replay_cache,
                key=(owner.cache_key(), epoch),
            )

    def next(self) -> Batch | None:
        batch = self._next()
        if batch is None:
            self.finished = True
        else:
            self.steps += 1
            self.recent.append(batch)
        return batch

    def _next(self) -> Batch | None:
        if self.pending:
            return self.pending.popleft()
        if self.balancing and not self.drained:
            self.engine.refill()
            if self.engine.exhausted:
                self._drain()
                return self.pending.popleft() if self.pending else None
        return self.engine.next_batch()

    def _drain(self) -> None:
        """This rank's data ran out: plan the rest of the epoch with every other rank's lane
        (`padless.sampling.balance`)."""
        assert self.replay is not None
        cfg = self.owner.config
        plan = plan_drain(
            self.engine,
            self.replay.result(),
            self._shadow,
            joint=cfg.sync,
            tolerance=cfg.joint_drain_tolerance,
            fresh=lambda lane: self.owner.make_engine(lane, self.epoch, concurrent=False),
        )
        self.lane_counts = plan.counts
        for batch in plan.dropped:
            self.balance_dropped["rank_balance"] += len(batch.items)
            self.owner.stats.buckets[batch.bucket].dropped += len(batch.items)
        if plan.dropped or plan.lent or plan.borrowed:
            log.warning(
                "rank %d, epoch %d: equal batch counts (%d per rank) drop %d examples of this "
                "rank, lend %d to other ranks and borrow %d",
                self.owner.rank,
                self.epoch,
                plan.target,
                self.balance_dropped["rank_balance"],
                plan.lent,
                plan.borrowed,
            )
        self.pending.extend(plan.batches)
        self.drained = True

    def _shadow(self, snap: LaneSnapshot) -> LaneEngine:
        engine = self.owner.make_engine(snap.rank, self.epoch, concurrent=False)
        engine.restore_snapshot(snap)
        return engine

    def dropped(self) -> Counter[str]:
        return self.engine.dropped + self.balance_dropped

    def close(self) -> None:
        self.engine.close()
        if self.replay is not None:
            self.replay.close()

    # ------------------------------------------------------------------ state

    def state_dict(self, consumed_steps: int | None) -> dict[str, Any]:
        pending = list(self.pending)
        steps = self.steps
        if consumed_steps is not None:
            unconsumed = self.steps - consumed_steps
            if not 0 <= unconsumed <= min(len(self.recent), self.owner.config.resume_lookback):
                raise ValueError(
                    f"consumed_steps={consumed_steps}: {self.steps} batches were yielded and the "
                    f"last {len(self.recent)} are remembered (resume_lookback)"
                )
            if unconsumed:
                pending = list(self.recent)[-unconsumed:] + pending
            steps = consumed_steps
        return {
            "epoch": self.epoch,
            "steps": steps,
            "engine": self.engine.state_dict(),
            "pending": [_encode_batch(b) for b in pending],
            "drained": self.drained,
            "balance_dropped": dict(self.balance_dropped),
            "lane_counts": None
            if self.lane_counts is None
            else {str(k): list(v) for k, v in self.lane_counts.items()},
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.engine.load_state_dict(state["engine"])
        self.steps = int(state["steps"])
        self.pending.extend(_decode_batch(b) for b in state["pending"])
        self.drained = bool(state["drained"])
        self.balance_dropped = Counter(state.get("balance_dropped") or {})
        counts = state.get("lane_counts")
        if counts is not None:
            self.lane_counts = {int(k): LaneCount(*v) for k, v in counts.items()}


def _encode_batch(batch: Batch) -> list[Any]:
    return [
        batch.bucket,
        batch.drawn,
        batch.full,
        [encode_item(x) for x in batch.items],
        list(batch.dur),
        list(batch.tok),
    ]


def _decode_batch(data: list[Any]) -> Batch:
    bucket, drawn, full, items, dur, tok = data
    return Batch(
        [decode_item(x) for x in items], int(bucket), int(drawn), bool(full), list(dur), list(tok)
    )
