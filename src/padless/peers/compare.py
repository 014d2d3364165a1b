"""The side-by-side comparison `padless bench-sampler` prints: every rank's padless sampler run
in this process, step by step, with statistics computed from the batches actually yielded, and
the lhotse peer's batches measured the same way (`lhotse_report`, `compare_with_lhotse`).

- **Padding** is recomputed from the emitted examples' own ``duration`` and ``num_tokens``
  (not from the sampler's internal counters, which are reported per bucket and checked against
  it).
- **Ranks** run interleaved: step ``s`` of rank 0, then of rank 1, ... so per-step agreement
  (every rank used the same bucket) and the spread of batch lengths across ranks are measured
  on the batches a DDP job would put side by side. Agreement is also reported per tenth of the
  run, where lhotse's uniform draws decay.
- **Time**: ``sampler_s`` is the time inside ``next(sampler)`` summed over ranks; ``read_s`` the
  part of it spent inside the data layer reading and parsing manifests (in line reading only);
  ``examples_per_s`` = examples / (sampler_s - read_s), the sampler's own throughput, which is
  what the lhotse peer reports too (its cuts are in memory); ``end_to_end_examples_per_s``
  includes reading. ``first_batch_s``: the slowest rank's own time in ``iter()`` and ``next()``
  until its first batch (ranks in one process share the CPU, so with several ranks this is
  pessimistic). ``peak_rss_mb``: this process's peak resident memory (`padless.peers.rss`).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import IO, Any

import numpy as np

from padless.data.example import Example
from padless.peers.lhotse_config import LhotsePeerConfig
from padless.peers.lhotse_run import (
    LhotsePeerResult,
    PeerRssReport,
    measure_lhotse_peer_rss,
    run_lhotse_peer,
)
from padless.peers.rss import peak_rss_mb
from padless.peers.settings import lhotse_settings
from padless.sampling.config import SamplerConfig
from padless.sampling.plan import BucketPlan
from padless.sampling.policies import BatchPolicy
from padless.sampling.sampler import DynamicBucketingSampler
from padless.sampling.stats import PaddingTotals, SamplerStats

SamplerFactory = Callable[[int], DynamicBucketingSampler]


@dataclass
class StepLog:
    """Per step (index into the run's steps), what every rank did."""

    buckets: list[list[int]] = field(default_factory=list)  # bucket of each rank's batch
    max_durations: list[list[float]] = field(default_factory=list)  # longest example per rank

    def add(self, buckets: list[int], max_durations: list[float]) -> None:
        self.buckets.append(buckets)
        self.max_durations.append(max_durations)

    def agreement(self) -> tuple[float, list[float]]:
        """Share of steps where every rank used the same bucket: overall and per tenth."""
        same = np.array([len(set(b)) == 1 for b in self.buckets], dtype=np.float64)
        if len(same) == 0:
            return 1.0, [1.0] * 10
        tenths = [
            float(part.mean()) if len(part) else math.nan for part in np.array_split(same, 10)
        ]
        return float(same.mean()), [round(x, 4) for x in tenths]

    def spread(self) -> dict[str, float]:
        """Per step, longest batch example over shortest across ranks (1.0: equal)."""
        if not self.max_durations or len(self.max_durations[0]) < 2:
            return {"mean": 1.0, "p50": 1.0, "p95": 1.0}
        m = np.array(self.max_durations)
        ratio = m.max(axis=1) / m.min(axis=1)
        return {
            "mean": round(float(ratio.mean()), 4),
            "p50": round(float(np.median(ratio)), 4),
            "p95": round(float(np.quantile(ratio, 0.95)), 4),
        }


@dataclass
class RunReport:
    """Everything one benchmark run measured; ``to_json`` gives the CLI's ``--json`` keys."""

    world_size: int
    epochs: int
    batches: list[int]
    totals: PaddingTotals
    filtered: Counter[str]
    sampler_s: float
    read_s: float
    first_batch_s: float
    peak_rss_mb: float
    per_bucket: list[dict[str, Any]]
    steps: StepLog
    internal_totals: PaddingTotals
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        t = self.totals
        agreement, tenths = self.steps.agreement()
        own = self.sampler_s - self.read_s
        return {
            "examples": t.examples,
            "batches": self.batches,
            "filtered": dict(self.filtered),
            "audio_padding": round(t.audio_padding, 5),
            "token_padding": round(t.token_padding, 5),
            "mean_batch_size": round(t.mean_batch_size, 3),
            "mean_batch_seconds": round(t.mean_batch_seconds, 3),
            "examples_per_s": round(t.examples / own, 1) if own > 0 else None,
            "end_to_end_examples_per_s": round(t.examples / self.sampler_s, 1)
            if self.sampler_s > 0
            else None,
            "sampler_s": round(self.sampler_s, 4),
            "read_s": round(self.read_s, 4),
            "first_batch_s": round(self.first_batch_s, 4),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "per_bucket": self.per_bucket,
            "rank_agreement": round(agreement, 4),
            "rank_agreement_by_tenth": tenths,
            "max_duration_spread": self.steps.spread(),
            "stats_consistent": _same_totals(self.totals, self.internal_totals),
            "world_size": self.world_size,
            "epochs": self.epochs,
            **self.extra,
        }


def _same_totals(a: PaddingTotals, b: PaddingTotals) -> bool:
    return (
        a.examples == b.examples
        and a.batches == b.batches
        and math.isclose(a.padded_duration, b.padded_duration, rel_tol=1e-9)
        and a.padded_tokens == b.padded_tokens
    )


def run_samplers(
    make: SamplerFactory,
    world_size: int,
    *,
    epochs: int = 1,
    resume_from_step: int | None = None,
    dump: IO[str] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> RunReport:
    """Run every rank's sampler for ``epochs``, interleaved by step; see the module docstring.

    ``resume_from_step=K``: in the first epoch, after K batches each rank saves its state
    (through JSON), a fresh sampler loads it and continues; only batches from step K on are
    dumped. ``dump``: one JSON line per batch ``{"rank", "step", "bucket", "ids"}``.
    """
    if world_size < 1 or epochs < 1:
        raise ValueError(f"world_size and epochs must be >= 1, got {world_size} and {epochs}")
    samplers = [make(r) for r in range(world_size)]
    totals = PaddingTotals()
    internal = SamplerStats(len(samplers[0].plan))
    filtered: Counter[str] = Counter()
    batches = [0] * world_size
    steps = StepLog()
    sampler_s = read_s = first_batch_s = 0.0
    extra: dict[str, Any] = {}
    global_step = 0
    for epoch in range(epochs):
        for s in samplers:
            s.set_epoch(epoch)
        iters = []
        waited = []  # each rank's own time in iter() and next() until its first batch
        for s in samplers:
            t0 = time.perf_counter()
            iters.append(iter(s))
            waited.append(time.perf_counter() - t0)
            sampler_s += waited[-1]
        first: list[float | None] = [None] * world_size
        live = [True] * world_size
        step = 0
        while any(live):
            if resume_from_step is not None and epoch == 0 and step == resume_from_step:
                t0 = time.perf_counter()
                sizes = []
                for r in range(world_size):
                    if live[r]:
                        read_s += samplers[r].read_seconds
                        internal.merge(samplers[r].stats)  # the new sampler counts from here
                    state = json.dumps(samplers[r].state_dict())
                    sizes.append(len(state))
                    samplers[r].close()
                    samplers[r] = make(r)
                    samplers[r].load_state_dict(json.loads(state))
                    iters[r] = iter(samplers[r])
                extra["resume"] = {
                    "step": step,
                    "save_restore_s": round(time.perf_counter() - t0, 4),
                    "state_bytes_per_rank": sizes,
                }
            row_buckets: list[int] = []
            row_max: list[float] = []
            for r in range(world_size):
                if not live[r]:
                    continue
                t0 = time.perf_counter()
                batch = next(iters[r], None)
                now = time.perf_counter()
                sampler_s += now - t0
                if first[r] is None:
                    waited[r] += now - t0
                if batch is None:
                    live[r] = False
                    read_s += samplers[r].read_seconds
                    filtered.update(samplers[r].dropped)
                    internal.merge(samplers[r].stats)
                    continue
                if first[r] is None:
                    first[r] = waited[r]
                info = samplers[r].last_batch
                assert info is not None and info.items is batch
                durations = [e.duration for e in batch]
                totals.add(durations, [e.num_tokens or 0 for e in batch])
                batches[r] += 1
                row_buckets.append(info.bucket)
                row_max.append(max(durations))
                if dump is not None and (
                    resume_from_step is None or epoch > 0 or step >= resume_from_step
                ):
                    dump.write(
                        json.dumps(
                            {
                                "rank": r,
                                "step": global_step,
                                "bucket": info.bucket,
                                "ids": [e.id for e in batch],
                            }
                        )
                        + "\n"
                    )
            if len(row_buckets) == world_size:
                steps.add(row_buckets, row_max)
            if row_buckets:
                step += 1
                global_step += 1
                if on_batch is not None:
                    on_batch(len(row_buckets))
        first_batch_s = max(first_batch_s, max((f or 0.0) for f in first))
    for s in samplers:
        s.close()
    per_bucket = internal.per_bucket_json()
    return RunReport(
        world_size=world_size,
        epochs=epochs,
        batches=batches,
        totals=totals,
        filtered=filtered,
        sampler_s=sampler_s,
        read_s=read_s,
        first_batch_s=first_batch_s,
        peak_rss_mb=peak_rss_mb(),
        per_bucket=per_bucket,
        steps=steps,
        internal_totals=internal.total,
        extra=extra,
    )


def lhotse_report(
    result: LhotsePeerResult,
    lengths: dict[str, tuple[float, int]],
    plan_buckets: int,
    rss: PeerRssReport | None = None,
) -> dict[str, Any]:
    """The same keys for a `LhotsePeerResult`, padding and
    agreement computed from its batches (ids looked up in ``lengths``) exactly as for padless."""
    totals = PaddingTotals()
    per_bucket = [PaddingTotals() for _ in range(plan_buckets + 1)]
    steps = StepLog()
    ranks = result.ranks
    n_steps = max(len(r.batches) for r in ranks)
    for s in range(n_steps):
        row_b, row_m = [], []
        for r in ranks:
            if s >= len(r.batches):
                continue
            ids = r.batches[s]
            dur = [lengths[i][0] for i in ids]
            tok = [lengths[i][1] for i in ids]
            totals.add(dur, tok)
            b = r.buckets[s]
            per_bucket[min(b, plan_buckets)].add(dur, tok)
            row_b.append(b)
            row_m.append(max(dur))
        if len(row_b) == len(ranks):
            steps.add(row_b, row_m)
    agreement, tenths = steps.agreement()
    out = {
        "examples": totals.examples,
        "batches": [len(r.batches) for r in ranks],
        "filtered": dict(result.filtered),
        "audio_padding": round(totals.audio_padding, 5),
        "token_padding": round(totals.token_padding, 5),
        "mean_batch_size": round(totals.mean_batch_size, 3),
        "mean_batch_seconds": round(totals.mean_batch_seconds, 3),
        "examples_per_s": round(result.examples_per_s, 1),
        "first_batch_s": round(result.first_batch_s, 4),
        "convert_s": round(result.convert_s, 3),
        "peak_rss_mb": None if rss is None else round(rss.peak_rss_mb, 1),
        "peak_rss_over_baseline_mb": None if rss is None else round(rss.peak_over_baseline_mb, 1),
        "per_bucket": [{"bucket": i, **p.to_json()} for i, p in enumerate(per_bucket) if p.batches],
        "rank_agreement": round(agreement, 4),
        "rank_agreement_by_tenth": tenths,
        "max_duration_spread": steps.spread(),
        "lhotse_version": result.lhotse_version,
        "warnings": list(result.warnings),
    }
    return out


def ratios(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float | None]:
    """padless / lhotse for the headline figures."""

    def ratio(key: str) -> float | None:
        a, b = ours.get(key), theirs.get(key)
        if a is None or b is None or b == 0:
            return None
        return round(a / b, 3)

    return {
        k: ratio(k)
        for k in (
            "examples_per_s",
            "first_batch_s",
            "peak_rss_mb",
            "audio_padding",
            "token_padding",
            "mean_batch_size",
        )
    }


def compare_with_lhotse(
    per_rank: list[list[Example]],
    plan: BucketPlan,
    policy: BatchPolicy,
    config: SamplerConfig,
    measure_rss: bool,
    materialize: bool,
) -> dict[str, Any]:
    """Run the lhotse peer with the settings equivalent to padless's (`lhotse_settings`) on
    every rank's examples and report it like `RunReport.to_json`, plus its settings. With
    ``measure_rss`` the peer runs a second time in a fresh process for its peak RSS."""
    peer: LhotsePeerConfig = lhotse_settings(plan, policy, config)
    result = run_lhotse_peer(per_rank, peer)
    lengths = {e.id: (e.duration, e.num_tokens or 0) for rank in per_rank for e in rank}
    rss = None
    if measure_rss:
        rss = measure_lhotse_peer_rss(per_rank, replace(peer, materialize=materialize))
    report = lhotse_report(result, lengths, len(plan), rss)
    report["config"] = peer.to_json()
    return report
