"""Batch-size policies: how many examples of a bucket make one batch.

Each policy is a small class with the same operations:

- ``costs(durations, tokens)``: an integer cost per example (numpy, per chunk), computed once
  when the example enters the buffer. Integers keep bucket totals exact under add/remove, so a
  resumed sampler makes bit-identical readiness decisions. ``fits(costs)``: which examples a
  batch can hold at all (the sampler drops and counts the others).
- ``ready(counts, cost_sums)``: which buckets hold a full batch, (K,) bool; ``is_ready`` is
  the same for one bucket (the per-step hot path, plain Python).
- ``take(bucket, costs)``: given candidate costs of a bucket in the order the batch is formed
  (any iterable; consumed lazily), how many leading candidates form the batch.
  ``holds(bucket, costs)``: whether one batch holds all of them (C-level, no loop).
  ``size(bucket)``: the batch size when it does not depend on the candidates, else None.
- ``expected_batch_size(plan)``: the mean batch size in each bucket, from the plan's sample;
  the synchronized bucket choice weighs buckets by their expected batch inflow with it.

Limits hold exactly: a batch never exceeds the budget, the fixed size or the table size.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from padless.sampling.plan import BucketPlan, PlanError

#: Durations are costed in integer microseconds (rounded up, so integer sums bound real ones).
MICROS = 1_000_000

TABLE_FORMAT = "padless.batch_sizes"
TABLE_VERSION = 1


class BatchPolicy(Protocol):
    def costs(self, durations: np.ndarray, tokens: np.ndarray) -> np.ndarray: ...

    def fits(self, costs: np.ndarray) -> np.ndarray: ...

    def ready(self, counts: np.ndarray, cost_sums: np.ndarray) -> np.ndarray: ...

    def is_ready(self, bucket: int, count: int, cost_sum: int) -> bool: ...

    def take(self, bucket: int, costs: Iterable[int]) -> int: ...

    def holds(self, bucket: int, costs: Sequence[int]) -> bool: ...

    def size(self, bucket: int) -> int | None: ...

    def expected_batch_size(self, plan: BucketPlan) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class DurationBudget:
    """A budget of *padded* seconds per batch: ``batch_size * longest <= max_duration``.

    This is lhotse's ``max_duration`` semantics (its TimeConstraint), what the encoder actually
    computes on; with ``quadratic_duration`` set each duration ``d`` counts as
    ``d + d**2 / quadratic_duration`` (attention's quadratic memory; 15-40 for transformers).
    A bucket is ready once its examples add up to at least one budget.
    """

    #: Padded seconds per batch (the paper's 1D baseline: 360).
    max_duration: float
    #: Seconds at which the quadratic term doubles an example's cost; None: linear.
    quadratic_duration: float | None = None

    #: The budget in cost units (microseconds, rounded down).
    budget: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.max_duration > 0:
            raise ValueError(f"max_duration must be > 0, got {self.max_duration}")
        if self.quadratic_duration is not None and not self.quadratic_duration > 0:
            raise ValueError(f"quadratic_duration must be > 0, got {self.quadratic_duration}")
        object.__setattr__(self, "budget", int(np.floor(self.max_duration * MICROS)))

    def effective(self, durations: np.ndarray) -> np.ndarray:
        d = np.asarray(durations, dtype=np.float64)
        if self.quadratic_duration is None:
            return d
        return d + d * d / self.quadratic_duration

    def costs(self, durations: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        return np.ceil(self.effective(durations) * MICROS).astype(np.int64)

    def fits(self, costs: np.ndarray) -> np.ndarray:
        return costs <= self.budget

    def ready(self, counts: np.ndarray, cost_sums: np.ndarray) -> np.ndarray:
        return cost_sums >= self.budget

    def is_ready(self, bucket: int, count: int, cost_sum: int) -> bool:
        return cost_sum >= self.budget

    def take(self, bucket: int, costs: Iterable[int]) -> int:
        # The longest prefix with (size * longest) within budget; (n+1) * running max only
        # grows, so the first candidate that breaks it ends the batch.
        budget = self.budget
        n = longest = 0
        for c in costs:
            if c > longest:
                longest = c
            if (n + 1) * longest > budget:
                break
            n += 1
        return n

    def holds(self, bucket: int, costs: Sequence[int]) -> bool:
        return not costs or len(costs) * max(costs) <= self.budget

    def size(self, bucket: int) -> int | None:
        return None

    def expected_batch_size(self, plan: BucketPlan) -> np.ndarray:
        out = np.ones(len(plan))
        budget = self.max_duration
        for i, b in enumerate(plan.buckets):
            if not b.duration_quantiles:
                continue
            cost_q = self.effective(np.asarray(b.duration_quantiles))
            out[i] = _padded_batch_size(tuple(cost_q.tolist()), budget)
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "policy": "duration",
            "max_duration": self.max_duration,
            "quadratic_duration": self.quadratic_duration,
        }


@functools.lru_cache(maxsize=4096)
def _padded_batch_size(cost_quantiles: tuple[float, ...], budget: float) -> float:
    """Largest k with k * E[max of k costs] <= budget, costs drawn from the quantile function.

    Cached: every engine (each rank, each replayed rank, each epoch) asks for the same buckets,
    and one bisection costs ~0.1 ms per bucket.
    """
    levels = np.linspace(0.0, 1.0, len(cost_quantiles))
    u = np.linspace(0.0, 1.0, 1025)
    q = np.interp(u, levels, cost_quantiles)  # quantile function on a fine grid
    mid = 0.5 * (q[1:] + q[:-1])

    def padded(k: int) -> float:  # k * E[max of k draws]; E[max_k] = integral of Q d(u^k)
        return k * float(np.dot(mid, np.diff(u**k)))

    lo, hi = 1, max(2, int(budget / max(cost_quantiles[0], 1e-9)) + 2)
    while hi - lo > 1:  # padded(k) is non-decreasing in k: bisect for the last k within budget
        k = (lo + hi) // 2
        lo, hi = (k, hi) if padded(k) <= budget else (lo, k)
    return float(lo)


@dataclass(frozen=True)
class FixedBatchSize:
    """Every batch has ``batch_size`` examples (the last batches of an epoch may have fewer)."""

    batch_size: int

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def costs(self, durations: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        return np.ones(len(durations), dtype=np.int64)

    def fits(self, costs: np.ndarray) -> np.ndarray:
        return np.ones(len(costs), dtype=bool)

    def ready(self, counts: np.ndarray, cost_sums: np.ndarray) -> np.ndarray:
        return counts >= self.batch_size

    def is_ready(self, bucket: int, count: int, cost_sum: int) -> bool:
        return count >= self.batch_size

    def take(self, bucket: int, costs: Iterable[int]) -> int:
        return sum(1 for _ in zip(range(self.batch_size), costs, strict=False))

    def holds(self, bucket: int, costs: Sequence[int]) -> bool:
        return len(costs) <= self.batch_size

    def size(self, bucket: int) -> int | None:
        return self.batch_size

    def expected_batch_size(self, plan: BucketPlan) -> np.ndarray:
        return np.full(len(plan), float(self.batch_size))

    def describe(self) -> dict[str, Any]:
        return {"policy": "fixed", "batch_size": self.batch_size}


@dataclass(frozen=True)
class BucketBatchSizes:
    """One batch size per bucket, e.g. from the batch-size search (``padless oomptimize``).

    Table schema (version 1)::

        {"format": "padless.batch_sizes", "version": 1,
         "buckets": [{"index": i, "max_duration": b, "max_tokens": d, "batch_size": n, ...}]}

    Extra fields are ignored. `load` checks the table against the plan: same bucket count and
    the same upper edges, else a `PlanError` naming the first mismatch.
    """

    batch_sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        bad = [i for i, n in enumerate(self.batch_sizes) if n < 1]
        if bad:
            raise ValueError(
                f"batch sizes must be >= 1; bucket {bad[0]} has {self.batch_sizes[bad[0]]}"
            )

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], plan: BucketPlan, source: str = "<table>"
    ) -> BucketBatchSizes:
        if not isinstance(data, Mapping):
            raise PlanError(f"{source}: not a batch-size table (a JSON {type(data).__name__})")
        if data.get("format") != TABLE_FORMAT:
            raise PlanError(f"{source}: not a batch-size table (format {data.get('format')!r})")
        if data.get("version") != TABLE_VERSION:
            raise PlanError(
                f"{source}: table version {data.get('version')}, expected {TABLE_VERSION}"
            )
        rows = data.get("buckets") or []
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise PlanError(f"{source}: 'buckets' must be a list of objects")
        if len(rows) != len(plan):
            raise PlanError(f"{source}: table has {len(rows)} buckets, the plan has {len(plan)}")
        for n, row in enumerate(rows):
            for key in ("index", "max_duration", "batch_size"):
                if key not in row:
                    raise PlanError(f"{source}: row {n} has no {key!r}")
            if type(row["index"]) is not int:
                raise PlanError(f"{source}: row {n}: index {row['index']!r} is not an integer")
        sizes = []
        for i, (row, bucket) in enumerate(
            zip(sorted(rows, key=lambda r: r["index"]), plan.buckets, strict=True)
        ):
            if row["index"] != i:
                raise PlanError(f"{source}: bucket indices must be 0..{len(plan) - 1}, missing {i}")
            if not np.isclose(float(row["max_duration"]), bucket.max_duration, rtol=0, atol=1e-6):
                raise PlanError(
                    f"{source}: bucket {i} max_duration {row['max_duration']} "
                    f"!= plan's {bucket.max_duration}"
                )
            tab_tok, plan_tok = row.get("max_tokens"), bucket.max_tokens
            if (tab_tok is None) != (plan_tok is None) or (
                tab_tok is not None and int(tab_tok) != plan_tok
            ):
                raise PlanError(f"{source}: bucket {i} max_tokens {tab_tok} != plan's {plan_tok}")
            size = row["batch_size"]
            # A batch size is a count: 2.7 or "3" is a broken table, not a batch of 2 or 3.
            if type(size) is not int or size < 1:
                raise PlanError(
                    f"{source}: bucket {i} batch_size {size!r} is not a positive integer"
                )
            sizes.append(size)
        return cls(tuple(sizes))

    @classmethod
    def load(cls, path: str | Path, plan: BucketPlan) -> BucketBatchSizes:
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise PlanError(f"{path}: not JSON: {err}") from err
        return cls.from_json(data, plan, str(path))

    def costs(self, durations: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        return np.ones(len(durations), dtype=np.int64)

    def fits(self, costs: np.ndarray) -> np.ndarray:
        return np.ones(len(costs), dtype=bool)

    def ready(self, counts: np.ndarray, cost_sums: np.ndarray) -> np.ndarray:
        return counts >= np.asarray(self.batch_sizes)

    def is_ready(self, bucket: int, count: int, cost_sum: int) -> bool:
        return count >= self.batch_sizes[bucket]

    def take(self, bucket: int, costs: Iterable[int]) -> int:
        return sum(1 for _ in zip(range(self.batch_sizes[bucket]), costs, strict=False))

    def holds(self, bucket: int, costs: Sequence[int]) -> bool:
        return len(costs) <= self.batch_sizes[bucket]

    def size(self, bucket: int) -> int | None:
        return self.batch_sizes[bucket]

    def expected_batch_size(self, plan: BucketPlan) -> np.ndarray:
        if len(self.batch_sizes) != len(plan):
            raise PlanError(f"table has {len(self.batch_sizes)} buckets, the plan has {len(plan)}")
        return np.asarray(self.batch_sizes, dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        return {"policy": "table", "batch_sizes": list(self.batch_sizes)}
