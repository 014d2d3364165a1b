"""How much the found batch sizes gain over the batch-duration heuristic, on the same plan.

The heuristic (lhotse's ``max_duration``, 360 s in the paper's Canary-1B baseline) fills a batch
until its examples' durations sum to the budget, so a bucket's batch holds about
``floor(360 / mean duration)`` examples. The search gives each bucket a fixed size instead.

Both are compared per training step, as the paper does. Over an epoch a bucket with ``c_i``
examples yields ``c_i / n_i`` steps, so the mean batch size per step is
``sum(c_i) / sum(c_i / n_i)`` and the mean audio per step ``sum(d_i) / sum(c_i / n_i)``, with
``c_i`` and ``d_i`` the example count and total duration the plan's sample puts in bucket ``i``
(its occupancy). For the same data the two means change by the same factor: the ratio of the
number of steps per epoch. Without occupancy in the plan, buckets are weighted equally and the
report says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from padless.batchsize.search import BucketResult
from padless.sampling.plan import Bucket

#: The paper's baseline batch-duration budget for Canary-1B (seconds of audio per batch).
HEURISTIC_SECONDS = 360.0


@dataclass(frozen=True)
class PolicySummary:
    mean_batch_size: float  # per training step
    mean_batch_audio_s: float  # per training step (actual audio, not padding)
    steps_per_epoch: float  # over the plan's sample


@dataclass(frozen=True)
class Comparison:
    heuristic_seconds: float
    weighting: str  # "occupancy" (plan sample) or "uniform" (no occupancy in the plan)
    heuristic: PolicySummary
    searched: PolicySummary
    batch_size_ratio: float  # searched / heuristic mean batch size per step
    heuristic_batch_sizes: tuple[int, ...]  # per bucket, plan order
    unweighted_ratio: float  # ratio of plain means over buckets (for reference)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def heuristic_batch_size(bucket: Bucket, seconds: float = HEURISTIC_SECONDS) -> int:
    """Examples a ``seconds`` duration budget puts in a batch of this bucket (at least 1)."""
    mean = bucket.sample_duration / bucket.sample_count if bucket.sample_count else 0.0
    return max(1, math.floor(seconds / (mean or bucket.max_duration)))


def compare(
    buckets: Sequence[Bucket],
    results: Sequence[BucketResult],
    seconds: float = HEURISTIC_SECONDS,
) -> Comparison:
    """Mean batch size and audio per step: the search's table vs the duration heuristic."""
    if len(buckets) != len(results):
        raise ValueError(f"{len(buckets)} plan buckets but {len(results)} results")
    occupancy = all(b.sample_count > 0 for b in buckets)
    if occupancy:
        counts = [float(b.sample_count) for b in buckets]
        audio = [b.sample_duration for b in buckets]
        weighting = "occupancy"
    else:
        counts = [1.0] * len(buckets)
        audio = [(b.min_duration + b.max_duration) / 2 for b in buckets]
        weighting = "uniform"
    heuristic = [heuristic_batch_size(b, seconds) for b in buckets]
    searched = [r.batch_size for r in results]

    def summary(sizes: Sequence[int]) -> PolicySummary:
        steps = sum(c / n for c, n in zip(counts, sizes, strict=True))
        return PolicySummary(sum(counts) / steps, sum(audio) / steps, steps)

    h, s = summary(heuristic), summary(searched)
    return Comparison(
        heuristic_seconds=seconds,
        weighting=weighting,
        heuristic=h,
        searched=s,
        batch_size_ratio=s.mean_batch_size / h.mean_batch_size,
        heuristic_batch_sizes=tuple(heuristic),
        unweighted_ratio=(sum(searched) / len(searched)) / (sum(heuristic) / len(heuristic)),
    )


def plot(
    buckets: Sequence[Bucket],
    results: Sequence[BucketResult],
    comparison: Comparison,
    budget_bytes: int,
    path: str,
    title: str = "",
) -> None:
    """Two panels: batch size per bucket (found vs heuristic), peak memory vs the budget."""
    # matplotlib is optional at import time: only plotting pays its import (about half a second).
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = [r.shape.index for r in results]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    top.bar(index, [r.batch_size for r in results], color="tab:blue", label="search")
    top.plot(
        index,
        comparison.heuristic_batch_sizes,
        "k.-",
        label=f"{comparison.heuristic_seconds:g} s heuristic",
    )
    top.set_yscale("log")
    top.set_ylabel("batch size")
    top.legend()
    top.set_title(title or f"mean batch size per step x{comparison.batch_size_ratio:.2f}")
    peaks = [(r.peak_bytes or 0) / 2**30 for r in results]
    bottom.bar(index, peaks, color="tab:orange", label="peak at chosen batch size")
    bottom.axhline(budget_bytes / 2**30, color="k", linestyle="--", label="budget")
    bottom.set_ylabel("GiB")
    bottom.set_xlabel("bucket (plan order)")
    bottom.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
