"""The bucket plan: bucket edges estimated once from a sample, saved as ``plan.json``.

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

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from padless.data.errors import PadlessInputError
from padless.data.example import Example
from padless.sampling.bins import Reservoir, estimate_edges
from padless.sampling.config import BinEstimator, PlanConfig
from padless.sampling.filters import FilterConfig
from padless.sampling.lengths import ExampleLengths, LengthFn

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
        except (KeyError, TypeError, ValueError) as err:
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
        import hashlib

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


# ---------------------------------------------------------------------- estimation


def estimate_plan(
    durations: np.ndarray,
    tokens: np.ndarray,
    config: PlanConfig,
    filters: FilterConfig | None = None,
    *,
    sample_info: Mapping[str, Any] | None = None,
    filtered: Mapping[str, int] | None = None,
) -> BucketPlan:
    """Estimate a plan from a sample of *filtered* lengths: durations (n,) s, tokens (n,)."""
    filters = filters or FilterConfig()
    dur = np.asarray(durations, dtype=np.float64)
    tok = np.asarray(tokens, dtype=np.int64)
    if len(dur) == 0:
        raise PlanError("no examples left to estimate a plan from (all filtered?)")
    k, s = config.num_buckets, config.num_subbuckets
    dur_edges = estimate_edges(
        dur, k, config.bins, filters.max_duration, min_share=config.min_share
    )
    lower = 0.0 if filters.min_duration is None else filters.min_duration
    dur_bin = np.minimum(np.searchsorted(dur_edges, dur, side="left"), k - 1)
    buckets: list[Bucket] = []
    for i in range(k):
        in_bin = dur_bin == i
        bin_tok = tok[in_bin]
        lo_d = lower if i == 0 else float(dur_edges[i - 1])
        if s == 1:
            top = int(bin_tok.max()) if len(bin_tok) else None
            tok_edges: list[int | None] = [top]
        elif len(bin_tok) == 0:
            tok_edges = [None] * s
        else:
            tok_edges = [
                int(e) for e in estimate_edges(bin_tok, s, config.bins, min_share=config.min_share)
            ]
        for j in range(s):
            hi_t = tok_edges[j]
            lo_t = None if (s == 1 or j == 0) else tok_edges[j - 1]
            if s > 1 and len(bin_tok):
                sel = (bin_tok <= (hi_t if hi_t is not None else np.inf)) & (
                    bin_tok > (lo_t if lo_t is not None else -np.inf)
                )
                members_d, members_t = dur[in_bin][sel], bin_tok[sel]
            else:
                members_d, members_t = dur[in_bin], bin_tok
            buckets.append(
                Bucket(
                    index=i * s + j,
                    min_duration=lo_d,
                    max_duration=float(dur_edges[i]),
                    min_tokens=lo_t,
                    max_tokens=hi_t,
                    **_sample_fields(members_d, members_t),
                )
            )
    plan = BucketPlan(
        buckets=tuple(buckets),
        num_duration_bins=k,
        num_subbuckets=s,
        bins=config.bins,
        filters=filters,
        sample=dict(sample_info or {}, size=len(dur), min_share=config.min_share),
        filtered=dict(filtered or {}),
    )
    return replace(plan, expected_padding=expected_padding(plan, dur, tok))


def _sample_fields(dur: np.ndarray, tok: np.ndarray) -> dict[str, Any]:
    if len(dur) == 0:
        return {}
    levels = np.linspace(0.0, 1.0, NUM_QUANTILES)
    return {
        "sample_count": len(dur),
        "sample_duration": float(dur.sum()),
        "sample_tokens": int(tok.sum()),
        "duration_quantiles": tuple(round(float(x), 4) for x in np.quantile(dur, levels)),
        "token_quantiles": tuple(round(float(x), 2) for x in np.quantile(tok, levels)),
    }


def expected_padding(
    plan: BucketPlan, durations: np.ndarray, tokens: np.ndarray
) -> dict[str, float]:
    """Padding if every example were padded to its bucket's upper edges (flexible assignment;
    open token bounds count as padding to the example itself). A bound, not a measurement:
    batches are padded to their own maximum, which is lower."""
    from padless.sampling.assign import BucketAssigner

    dur = np.asarray(durations, dtype=np.float64)
    tok = np.asarray(tokens, dtype=np.int64)
    idx = BucketAssigner(plan, "flexible").assign(dur, tok)
    ok = idx >= 0
    max_d = np.array([b.max_duration for b in plan.buckets])[idx[ok]]
    max_t = plan.token_edges.reshape(-1)[idx[ok]]
    max_t = np.where(np.isfinite(max_t), max_t, tok[ok])
    if not plan.is_2d:  # informational bounds: pad to the bin's sample maximum
        max_t = np.maximum(max_t, tok[ok])
    return {
        "audio": round(1.0 - float(dur[ok].sum()) / float(max_d.sum()), 5),
        "token": round(1.0 - float(tok[ok].sum()) / float(max_t.sum()), 5),
    }


def plan_from_examples(
    examples: Iterable[Example],
    config: PlanConfig,
    filters: FilterConfig | None = None,
    *,
    lengths: LengthFn | None = None,
    sample_size: int = 100_000,
    seed: int = 0,
    chunk_size: int = 4096,
    on_chunk: Callable[[int], None] | None = None,
    sample_info: Mapping[str, Any] | None = None,
) -> tuple[BucketPlan, np.ndarray, np.ndarray]:
    """Read every example once, filter it, keep a uniform random sample of ``sample_size``
    kept examples (`Reservoir`) and estimate the plan on it. ``on_chunk(n)`` reports progress.
    Filter counts cover the whole stream. Returns the plan and the sample (durations, tokens)."""
    filters = filters or FilterConfig()
    lengths = lengths or ExampleLengths()
    reservoir = Reservoir(sample_size, seed)
    counts: Counter[str] = Counter()
    it = iter(examples)
    seen = 0
    while chunk := list(islice(it, chunk_size)):
        dur, tok = lengths(chunk)
        keep = filters.apply(dur, tok, counts)
        reservoir.add(dur[keep], tok[keep])
        seen += len(chunk)
        if on_chunk is not None:
            on_chunk(len(chunk))
    dur, tok = reservoir.sample()
    info = dict(sample_info or {}, seed=seed, requested=sample_size, examples_seen=seen)
    info["examples_kept"] = reservoir.seen
    plan = estimate_plan(dur, tok, config, filters, sample_info=info, filtered=dict(counts))
    return plan, dur, tok
