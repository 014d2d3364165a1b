"""The lhotse peer's settings: lhotse's DynamicBucketingSampler run on padless `Example`s, as the
reference to compare with.

``run_lhotse_peer(examples_per_rank, LhotsePeerConfig(...))`` (`padless.peers.lhotse_run`)
converts each rank's Examples to lhotse cuts and runs lhotse 1.33's ``DynamicBucketingSampler``
over them with settings equivalent to padless's sampler; it returns, per rank, the batches (id
lists), the bucket of each batch and the timings. ``measure_lhotse_peer_rss`` runs the same in a
fresh subprocess and reports its peak RSS. ``padless bench-sampler --compare lhotse`` calls both
(`padless.peers.compare`). lhotse is a dev dependency (``pip install -e '.[dev]'``); it is
imported only when a peer runs (inside functions, so that padless imports without it).

Equivalence choices (what "the same settings" means here, and where it cannot be the same):

- **Ranks.** padless gives every rank its own part of the data. The peer runs one sampler per
  rank on that rank's Examples with ``world_size=1`` (what NeMo does for tarred data): lhotse's
  own multi-rank mode instead has every rank read *all* data and keep every W-th batch. That
  mode is available as ``rank_mode="round_robin"`` (each rank's sampler then reads every rank's
  Examples, W times the work). Ranks run one after another in this process.
- **Synchronised buckets.** ``sync_buckets=True`` gives lhotse a bucket RNG seeded identically on
  every rank, so per-rank samplers draw the same bucket sequence. lhotse seeds it with the
  constant 1234, not the user seed, so every epoch and every seed draws the same sequence. The
  example-order RNG is ``random.Random(seed + epoch)`` inside lhotse; the peer passes
  ``seed + RANK_SEED_STRIDE * rank`` so ranks shuffle differently, as padless's per-rank RNGs do.
- **Bins.** 1D: the plan's upper duration edges; lhotse gets the inner edges and keeps its last
  bucket open-ended, so it has exactly the plan's bucket count (``trailing_empty_bucket=True``
  passes every edge, as NeMo configs do, leaving lhotse an extra always-empty bucket that its
  uniform draw still picks). 2D: lhotse has no 2D bucketing of its own; the peer uses NeMo's
  rule (``FixedBucketBatchSizeConstraint2D``): bins are (max duration, max tokens) pairs sorted
  ascending, ``strict`` takes the duration bin first and then the first token sub-bin that fits
  (else the example is dropped), ``strict=False`` takes the first pair that fits both lengths.
  The peer's bisect implementation of that rule is faster than NeMo's numpy one, which can only
  flatter lhotse. ``bins=None`` lets lhotse estimate 1D bins itself with
  ``estimate_duration_buckets`` over the *first* ``num_examples_for_bins`` examples of each
  rank's stream (2D: token sub-bins of equal cumulative tokens within each duration bin on the
  same examples, NeMo's 2D estimate without its per-bucket TPS outlier cap).
- **Batch size.** ``max_duration`` maps to lhotse's ``TimeConstraint``, which bounds the *padded*
  batch duration (batch size x longest example), optionally with ``quadratic_duration``. It checks
  before adding an example whether one more of the longest seen would exceed the budget, so a
  batch can overshoot by its in-bucket length spread: for batch size B >= 2 it guarantees
  B x max(first B-1 durations) <= max_duration. ``batch_size`` maps to ``max_cuts`` (exact);
  ``bucket_batch_sizes`` to lhotse's ``FixedBucketBatchSizeConstraint`` (1D) or NeMo's 2D variant
  (exact per bucket).
- **Filters.** NeMo's filters, passed to ``sampler.filter``: min <= duration <= max,
  tokens <= max_tokens, tokens/duration <= tps_max, and the bucket fit (an example no bucket
  holds is dropped, as NeMo's ``BucketingFilter`` does). Each is counted under padless's reason
  names (`FILTER_REASONS`), checked in padless's order, so the counts compare one to one.
- **Tokens.** Read from ``cut.custom["num_tokens"]`` (NeMo measures ``len(supervision.tokens)``;
  padless has counts, not ids). Cuts are MonoCuts with a minimal Recording and one supervision
  (text and language), built with lhotse's constructors, about what lhotse spends deserialising
  a cut manifest.
- **Concurrency.** ``concurrent=True`` is lhotse's producer thread; its consumer polls every 1 s
  while the buffer is under 10% full, and its batches are not reproducible.

Timings: ``convert_s`` (Example -> cut, excluded from throughput when ``materialize=True``),
``construct_s`` (sampler construction, including lhotse's own bin estimate), ``first_batch_s``
(construction start to first batch), ``sampler_s`` (construction + time inside ``next()``).
With ``materialize=False`` cuts are built lazily inside the stream, so conversion is inside
``sampler_s`` and memory stays at the buffer's size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from padless.sampling import assign, filters
from padless.sampling.plan import BucketPlan

#: Filter reasons, named as padless's filters and bucket assignment name them, in the order
#: they are checked.
FILTER_REASONS = (*filters.FILTER_REASONS, *assign.ASSIGN_REASONS)

#: Added per rank to the user seed for lhotse's example-order RNG (``seed + epoch`` inside).
RANK_SEED_STRIDE = 7919

Bins1D = tuple[float, ...]
Bins2D = tuple[tuple[float, float], ...]


class LhotseMissingError(ImportError):
    """lhotse is not installed; the peer needs the dev extra."""


def import_lhotse() -> Any:
    try:
        import lhotse
    except ImportError as err:
        raise LhotseMissingError(
            "the lhotse peer needs lhotse 1.33, a dev dependency of padless: "
            "pip install -e '.[dev]' (or pip install lhotse==1.33.0)"
        ) from err
    return lhotse


@dataclass(frozen=True)
class LhotsePeerConfig:
    """Settings of the lhotse peer, named as padless names them (see the module docstring).

    Exactly one of ``max_duration``, ``batch_size`` and ``bucket_batch_sizes`` sets the batch
    size. Bins are given (``bins``) or estimated by lhotse (``bins=None``).
    """

    #: Upper bucket edges of the padless plan: 1D durations ``(b0, b1, ...)`` or 2D
    #: ``((duration, tokens), ...)`` sorted ascending. None: lhotse estimates its own bins.
    bins: Bins1D | Bins2D | None = None
    #: Bucket count when lhotse estimates 1D bins (``bins=None``).
    num_buckets: int = 30
    #: Token sub-bins per duration bin when estimating 2D bins (``bins=None``); None: 1D.
    num_subbuckets: int | None = None
    #: Examples from the head of each rank's stream used to estimate bins (lhotse: the first N).
    num_examples_for_bins: int = 100_000
    #: 1D/2D with given bins: pass every upper edge as NeMo configs do, leaving lhotse an extra,
    #: always-empty bucket (its uniform draw still picks it, then falls back to a neighbour).
    trailing_empty_bucket: bool = False
    #: 2D assignment: True, duration bin first then token sub-bin (misfits dropped); False, the
    #: first bucket that fits both lengths.
    strict: bool = True
    #: Padded seconds per batch (lhotse ``max_duration``: batch size x longest example).
    max_duration: float | None = None
    #: lhotse's quadratic term: each duration d counts as d + d**2 / quadratic_duration.
    quadratic_duration: float | None = None
    #: Fixed batch size (lhotse ``max_cuts``).
    batch_size: int | None = None
    #: One batch size per bucket (needs ``bins``, same length).
    bucket_batch_sizes: tuple[int, ...] | None = None
    #: Filters (NeMo's, inclusive bounds); None disables one.
    min_example_duration: float | None = None
    max_example_duration: float | None = None
    max_tokens: int | None = None
    tps_max: float | None = None
    #: Examples held across all buckets of one rank's sampler.
    buffer_size: int = 20_000
    shuffle: bool = True
    seed: int = 0
    epoch: int = 0
    #: lhotse ``sync_buckets``: identical bucket RNG on every rank.
    sync_buckets: bool = True
    #: lhotse's concurrent producer thread (non-deterministic, polls every 1 s at start).
    concurrent: bool = False
    #: "per_rank": each rank samples its own Examples with world_size=1 (as padless runs);
    #: "round_robin": lhotse's own mode, every rank reads all Examples and keeps every W-th batch.
    rank_mode: Literal["per_rank", "round_robin"] = "per_rank"
    #: Convert every cut before sampling (conversion timed apart, all cuts held in memory);
    #: False builds cuts lazily inside the stream (conversion inside the sampler's time).
    materialize: bool = True

    def __post_init__(self) -> None:
        chosen = [
            name
            for name in ("max_duration", "batch_size", "bucket_batch_sizes")
            if getattr(self, name) is not None
        ]
        if len(chosen) != 1:
            raise ValueError(
                "set exactly one of max_duration, batch_size, bucket_batch_sizes "
                f"(got {chosen or 'none'})"
            )
        if self.bins is not None:
            _validate_bins(self.bins)
            if self.num_subbuckets is not None:
                raise ValueError("num_subbuckets is for estimated bins; given bins fix the grid")
        if self.bucket_batch_sizes is not None:
            if self.bins is None:
                raise ValueError("bucket_batch_sizes needs the bins they were found for")
            if len(self.bucket_batch_sizes) != len(self.bins):
                raise ValueError(
                    f"{len(self.bucket_batch_sizes)} bucket batch sizes for "
                    f"{len(self.bins)} buckets"
                )
            if min(self.bucket_batch_sizes) < 1:
                raise ValueError("bucket batch sizes must be >= 1")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.max_duration is not None and self.max_duration <= 0:
            raise ValueError("max_duration must be > 0")
        if self.quadratic_duration is not None and self.max_duration is None:
            raise ValueError("quadratic_duration applies to the max_duration budget only")
        if self.bins is None and self.num_buckets < 2:
            raise ValueError("num_buckets must be >= 2")
        if self.buffer_size < 1:
            raise ValueError("buffer_size must be >= 1")

    @property
    def two_d(self) -> bool:
        if self.bins is None:
            return self.num_subbuckets is not None
        return isinstance(self.bins[0], tuple)

    @property
    def needs_tokens(self) -> bool:
        return self.two_d or self.tps_max is not None or self.max_tokens is not None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> LhotsePeerConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(obj) - known
        if unknown:
            raise ValueError(f"unknown LhotsePeerConfig keys: {sorted(unknown)}")
        obj = dict(obj)
        bins = obj.get("bins")
        if bins is not None:
            obj["bins"] = tuple(tuple(b) if isinstance(b, list) else b for b in bins)
        if obj.get("bucket_batch_sizes") is not None:
            obj["bucket_batch_sizes"] = tuple(obj["bucket_batch_sizes"])
        return cls(**obj)


def _validate_bins(bins: Bins1D | Bins2D) -> None:
    if len(bins) < 1:
        raise ValueError("bins must hold at least one bucket edge")
    if isinstance(bins[0], tuple):
        pairs = list(bins)
        if any(not isinstance(b, tuple) or len(b) != 2 for b in pairs):
            raise ValueError("2D bins must all be (max_duration, max_tokens) pairs")
        if pairs != sorted(pairs):
            raise ValueError("2D bins must be sorted by (duration, tokens)")
    else:
        edges = list(bins)
        if any(isinstance(b, tuple) for b in edges):
            raise ValueError("bins mix 1D edges and 2D pairs")
        if any(b > a for a, b in zip(edges[1:], edges[:-1], strict=False)):
            raise ValueError("1D bins must be non-decreasing")


def bins_from_plan(plan: BucketPlan) -> Bins1D | Bins2D:
    """Upper edges of a `padless.sampling.plan.BucketPlan`, in its bucket order: durations for
    a 1D plan (its token bounds are informational), (duration, tokens) pairs for a 2D one (an
    open token bound becomes inf). Bucket i of the peer is then bucket i of the plan."""
    if plan.num_subbuckets > 1:
        return tuple(
            (float(b.max_duration), math.inf if b.max_tokens is None else float(b.max_tokens))
            for b in plan.buckets
        )
    return tuple(float(b.max_duration) for b in plan.buckets)
