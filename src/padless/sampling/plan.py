"""The bucket plan: bucket edges estimated once from a sample (`padless.sampling.estimate`),
saved as ``plan.json``.

``padless plan`` writes it, the sampler and the batch-size search read it. Schema (version 1)::

    {"format": "padless.bucket_plan", "version": 1,
     "num_duration_bins": 30, "num_subbuckets": 2, "bins": "optimal",
     "token_bounds": "enforced" | "informational",
     "filters": {"min_duration": .., "max_duration": .., "max_tokens": .., "tps_max": ..},
     "buckets": [{"index": 0, "min_duration": a, "max_duration": b,
                  "min_tokens": c, "max_tokens": d,
                  "sample_count": n, "sample_duration": s, "sample_tokens": t,
                  "duration_quantiles": [...], "token_quantiles": [...]}, ...],
     "sample": {...}, "filtered": {reason: count}, "expected_padding": {...}}

Bucket ``i`` holds examples with ``a < duration <= b`` and ``c < tokens <= d``; ``null`` stands
for an open bound (-inf/inf); bucket 0 also holds ``duration == a`` (its lower edge is the
min-duration filter, which keeps ``duration >= min``). Buckets are ordered duration bin first,
then token sub-bin: bucket ``i`` is sub-bin ``i % num_subbuckets`` of duration bin
``i // num_subbuckets``.

In a 2D plan (``num_subbuckets > 1``) token bounds are enforced by assignment: the first
sub-bin has ``min_tokens = null`` and the last sub-bin's ``max_tokens`` is the sample's maximum
in that duration bin. In a 1D plan token bounds are *informational* (``token_bounds:
"informational"``): ``min_tokens`` is null and ``max_tokens`` is the sample's maximum in the
duration bin, the worst case the batch-size search needs; assignment ignores tokens.

The per-bucket ``sample_*`` fields and quantiles describe the plan's random sample in each
bucket; the sampler derives from them the expected batch inflow of every bucket, which sets
the synchronized bucket-choice weights identically on every rank.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from padless.data.errors import PadlessInputError
from padless.sampling.config import BinEstimator
from padless.sampling.filters import FilterConfig

PLAN_FORMAT = "padless.bucket_plan"
PLAN_VERSION = 1
#: Quantile levels stored per bucket (0, 1/32, ..., 1).
NUM_QUANTILES = 33


class PlanError(PadlessInputError):
    """A plan or batch-size table that cannot be used: wrong format, version, shape, or
    inconsistent buckets; or data that leave no plan (every example filtered)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, message)


@dataclass(frozen=True)
class Bucket:
    """One bucket: bounds (see the module docstring) and what the plan's sample put in it."""

    index: int
    min_duration: float
    max_duration: float
    min_tokens: int | None
    max_tokens: int | None
    sample_count: int = 0  # sample examples assigned here
    sample_duration: float = 0.0  # their total duration (s)
    sample_tokens: int = 0  # their total tokens
    duration_quantiles: tuple[float, ...] = ()  # NUM_QUANTILES levels of their durations
    token_quantiles: tuple[float, ...] = ()


@dataclass(frozen=True)
class BucketPlan:
    """Bucket edges plus how they were estimated; see the module docstring for the schema."""

    buckets: tuple[Bucket, ...]
    num_duration_bins: int
    num_subbuckets: int = 1
    bins: BinEstimator = "equal-duration"
    filters: FilterConfig = field(default_factory=FilterConfig)
    #: How the sample was drawn (size, seed, examples seen/kept, manifests).
    sample: Mapping[str, Any] = field(default_factory=dict)
    #: Examples removed by the filters while the sample was drawn, by reason.
    filtered: Mapping[str, int] = field(default_factory=dict)
    #: Padding if every sample example were padded to its bucket's upper edges.
    expected_padding: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.buckets)
        if n == 0 or n != self.num_duration_bins * self.num_subbuckets:
            raise PlanError(
                f"plan has {n} buckets, expected num_duration_bins x num_subbuckets = "
                f"{self.num_duration_bins} x {self.num_subbuckets}"
            )
        for i, b in enumerate(self.buckets):
            if b.index != i:
                raise PlanError(f"bucket {i} has index {b.index}")
        dur = self.duration_edges
        if np.any(np.diff(dur) < 0):
            raise PlanError(f"duration edges must be non-decreasing, got {dur.tolist()}")

    # ------------------------------------------------------------------ edges as arrays

    @property
    def is_2d(self) -> bool:
        return self.num_subbuckets > 1

    @property
    def duration_edges(self) -> np.ndarray:
        """Upper duration edge of each duration bin, (num_duration_bins,)."""
        s = self.num_subbuckets
        return np.array([self.buckets[i * s].max_duration for i in range(self.num_duration_bins)])

    @property
    def token_edges(self) -> np.ndarray:
        """Upper token edge of every bucket, (num_duration_bins, num_subbuckets); inf if open."""
        flat = [np.inf if b.max_tokens is None else float(b.max_tokens) for b in self.buckets]
        return np.array(flat).reshape(self.num_duration_bins, self.num_subbuckets)

    @property
    def occupancy(self) -> np.ndarray:
        """Fraction of the sample in each bucket, (num_buckets,)."""
        counts = np.array([b.sample_count for b in self.buckets], dtype=np.float64)
        total = counts.sum()
        return counts / total if total > 0 else np.full(len(counts), 1.0 / len(counts))

    def __len__(self) -> int:
        return len(self.buckets)

    # ------------------------------------------------------------------ disk

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "version": PLAN_VERSION,
            "num_duration_bins": self.num_duration_bins,
            "num_subbuckets": self.num_subbuckets,
            "bins": self.bins,
            "token_bounds": "enforced" if self.is_2d else "informational",
            "filters": self.filters.to_json(),
            "buckets": [_bucket_json(b) for b in self.buckets],
            "sample": dict(self.sample),
            "filtered": dict(self.filtered),
            "expected_padding": dict(self.expected_padding),
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        return path

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "<plan>") -> BucketPlan:
        if not isinstance(data, Mapping):
            raise PlanError(f"{source}: not a bucket plan (a JSON {type(data).__name__})")
        if data.get("format") != PLAN_FORMAT:
            raise PlanError(f"{source}: not a bucket plan (format {data.get('format')!r})")
        if data.get("version") != PLAN_VERSION:
            raise PlanError(
                f"{source}: plan version {data.get('version')}, expected {PLAN_VERSION}"
            )
        try:
            buckets = tuple(_bucket_from_json(b) for b in data["buckets"])
            return cls(
                buckets=buckets,
                num_duration_bins=int(data["num_duration_bins"]),
                num_subbuckets=int(data.get("num_subbuckets", 1)),
                bins=data.get("bins", "equal-duration"),
                filters=FilterConfig.from_json(data.get("filters") or {}),
                sample=data.get("sample") or {},
                filtered=data.get("filtered") or {},
                expected_padding=data.get("expected_padding") or {},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            if isinstance(err, PlanError):
                raise PlanError(f"{source}: {err}") from err
            raise PlanError(f"{source}: malformed plan: {err!r}") from err

    @classmethod
    def load(cls, path: str | Path) -> BucketPlan:
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise PlanError(f"{path}: not JSON: {err}") from err
        return cls.from_json(data, str(path))

    def fingerprint(self) -> str:
        """Stable short hash of the bucket bounds (checks a resumed sampler uses this plan)."""
        bounds = [
            (b.min_duration, b.max_duration, b.min_tokens, b.max_tokens) for b in self.buckets
        ]
        return hashlib.sha1(json.dumps(bounds).encode()).hexdigest()[:16]


def _bucket_json(b: Bucket) -> dict[str, Any]:
    out = asdict(b)
    out["duration_quantiles"] = list(b.duration_quantiles)
    out["token_quantiles"] = list(b.token_quantiles)
    return out


def _bucket_from_json(d: Mapping[str, Any]) -> Bucket:
    def opt_int(v: Any) -> int | None:
        return None if v is None else int(v)

    return Bucket(
        index=int(d["index"]),
        min_duration=float(d["min_duration"]),
        max_duration=float(d["max_duration"]),
        min_tokens=opt_int(d.get("min_tokens")),
        max_tokens=opt_int(d.get("max_tokens")),
        sample_count=int(d.get("sample_count", 0)),
        sample_duration=float(d.get("sample_duration", 0.0)),
        sample_tokens=int(d.get("sample_tokens", 0)),
        duration_quantiles=tuple(float(x) for x in d.get("duration_quantiles", ())),
        token_quantiles=tuple(float(x) for x in d.get("token_quantiles", ())),
    )
