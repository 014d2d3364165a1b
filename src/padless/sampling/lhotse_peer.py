"""Run lhotse's DynamicBucketingSampler on padless `Example`s, as the reference to compare with.

``run_lhotse_peer(examples_per_rank, LhotsePeerConfig(...))`` converts each rank's Examples to
lhotse cuts and runs lhotse 1.33's ``DynamicBucketingSampler`` over them with settings equivalent
to padless's sampler; it returns, per rank, the batches (id lists), the bucket of each batch and
the timings. ``measure_lhotse_peer_rss`` runs the same in a fresh subprocess and reports its peak
RSS. ``padless bench-sampler --compare lhotse`` calls both. lhotse is a dev dependency
(``pip install -e '.[dev]'``); it is imported only when a peer runs.

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

import csv
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

from padless.data.example import Example, FileAudio, ShardAudio

#: Filter reasons, named as padless's filters and bucket assignment name them.
FILTER_REASONS = (
    "too_short",
    "too_long",
    "too_many_tokens",
    "tps",
    "outside_plan",
    "strict_tokens",
)

#: Added per rank to the user seed for lhotse's example-order RNG (``seed + epoch`` inside).
RANK_SEED_STRIDE = 7919

Bins1D = tuple[float, ...]
Bins2D = tuple[tuple[float, float], ...]


class LhotseMissingError(ImportError):
    """lhotse is not installed; the peer needs the dev extra."""


def _import_lhotse() -> Any:
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


def bins_from_plan(plan: Any) -> Bins1D | Bins2D:
    """Upper edges of a `padless.sampling.plan.BucketPlan`, in its bucket order: durations for
    a 1D plan (its token bounds are informational), (duration, tokens) pairs for a 2D one (an
    open token bound becomes inf). Bucket i of the peer is then bucket i of the plan."""
    if plan.num_subbuckets > 1:
        return tuple(
            (float(b.max_duration), math.inf if b.max_tokens is None else float(b.max_tokens))
            for b in plan.buckets
        )
    return tuple(float(b.max_duration) for b in plan.buckets)


# --- bucket assignment (NeMo's rule), shared by the constraints and the post-hoc bucket index ---


class Grid2D:
    """Sorted (duration, tokens) upper edges grouped by duration, with NeMo's assignment rule."""

    def __init__(self, bins: Bins2D, strict: bool) -> None:
        self.bins = bins
        self.strict = strict
        self.durations: list[float] = []  # distinct duration edges, ascending
        self.starts: list[int] = []  # index of each group's first pair
        self.tokens: list[list[float]] = []  # each group's token edges, ascending
        for i, (dur, tok) in enumerate(bins):
            if not self.durations or dur != self.durations[-1]:
                self.durations.append(dur)
                self.starts.append(i)
                self.tokens.append([])
            self.tokens[-1].append(tok)
        self.group_max = [toks[-1] for toks in self.tokens]

    def misfit(self, duration: float, tokens: float) -> str | None:
        """None when a bucket holds the example, else why not (padless's reason names)."""
        if self.assign(duration, tokens) is not None:
            return None
        if duration > self.durations[-1] or not self.strict:
            return "outside_plan"
        return "strict_tokens"

    def assign(self, duration: float, tokens: float) -> int | None:
        """Bucket index of an example, or None when no bucket holds it."""
        g = bisect_left(self.durations, duration)
        if self.strict:
            if g == len(self.durations):
                return None
            j = bisect_left(self.tokens[g], tokens)
            return None if j == len(self.tokens[g]) else self.starts[g] + j
        for h in range(g, len(self.durations)):  # first pair (in order) fitting both lengths
            if tokens <= self.group_max[h]:
                return self.starts[h] + bisect_left(self.tokens[h], tokens)
        return None


@cache
def _constraint_classes() -> tuple[type, type]:
    """lhotse constraint subclasses for 2D bins, defined once lhotse is importable."""
    _import_lhotse()
    from lhotse.dataset.sampling.base import TimeConstraint
    from lhotse.dataset.sampling.dynamic_bucketing import FixedBucketBatchSizeConstraint

    class TimeConstraint2D(TimeConstraint):
        """lhotse's duration budget / max_cuts, with NeMo's 2D bucket selection."""

        def __init__(self, grid: Grid2D, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.grid = grid

        def select_bucket(self, buckets: Any, example: Any = None, example_len: Any = None) -> Any:
            if example_len is None:
                example_len = (example.duration, example.custom["num_tokens"])
            return self.grid.assign(*example_len)

    class FixedBucketBatchSizeConstraint2D(FixedBucketBatchSizeConstraint):
        """Per-bucket batch sizes over 2D bins (NeMo's class of the same name, same rule)."""

        def __init__(self, grid: Grid2D, batch_sizes: list[int]) -> None:
            super().__init__(max_seq_len_buckets=list(grid.bins), batch_sizes=batch_sizes)
            self.grid = grid

        def measure_length(self, example: Any) -> Any:
            return (example.duration, example.custom["num_tokens"])

        def select_bucket(self, buckets: Any, example: Any = None, example_len: Any = None) -> Any:
            if example_len is None:
                example_len = self.measure_length(example)
            return self.grid.assign(*example_len)

    return TimeConstraint2D, FixedBucketBatchSizeConstraint2D


# --- Examples -> cuts ---------------------------------------------------------------------------


class _Row(NamedTuple):
    """The metadata a cut needs, from an Example or from the RSS child's input file."""

    id: str
    duration: float
    num_tokens: int | None
    source: str  # audio path, shard or ""
    start: float
    sampling_rate: int
    text: str | None
    language: str | None


def _row(example: Example) -> _Row:
    audio = example.audio
    if isinstance(audio, FileAudio):
        source, start = audio.path, audio.offset
    elif isinstance(audio, ShardAudio):
        source, start = audio.shard, 0.0
    else:
        source, start = "", 0.0
    return _Row(
        example.id,
        example.duration,
        example.num_tokens,
        source,
        start,
        example.sampling_rate,
        example.text,
        example.target_lang,
    )


def _make_cut(row: _Row) -> Any:
    from lhotse import AudioSource, MonoCut, Recording, SupervisionSegment

    sr = row.sampling_rate
    rec_duration = row.start + row.duration
    recording = Recording(
        id=row.id,
        sources=[AudioSource(type="file", channels=[0], source=row.source)],
        sampling_rate=sr,
        num_samples=round(rec_duration * sr),
        duration=rec_duration,
    )
    supervision = SupervisionSegment(
        id=row.id,
        recording_id=row.id,
        start=0.0,
        duration=row.duration,
        channel=0,
        text=row.text,
        language=row.language,
    )
    return MonoCut(
        id=row.id,
        start=row.start,
        duration=row.duration,
        channel=0,
        recording=recording,
        supervisions=[supervision],
        custom={"num_tokens": row.num_tokens},
    )


class _LazyCuts:
    """Re-iterable cut stream built on the fly (lhotse reads the head for bins, then restarts)."""

    def __init__(self, rows: Iterable[_Row]) -> None:
        self.rows = rows

    def __iter__(self) -> Iterator[Any]:
        return map(_make_cut, self.rows)


class _ExampleRows:
    """Re-iterable `_Row`s of a sequence of Examples, checking token counts when needed."""

    def __init__(self, examples: Sequence[Example], needs_tokens: bool) -> None:
        self.examples = examples
        self.needs_tokens = needs_tokens

    def __iter__(self) -> Iterator[_Row]:
        for example in self.examples:
            if self.needs_tokens and example.num_tokens is None:
                raise ValueError(
                    f"example {example.id!r}: num_tokens is unknown; 2D bins and token filters "
                    "need token counts (a manifest with num_tokens, or a tokenizer)"
                )
            yield _row(example)


class _TsvRows:
    """Re-iterable `_Row`s from the RSS child's input file (id, duration, num_tokens)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[_Row]:
        with open(self.path, newline="") as f:
            for ex_id, dur, tok in csv.reader(f, delimiter="\t"):
                yield _Row(
                    ex_id, float(dur), int(tok) if tok else None, "", 0.0, 16_000, None, None
                )


# --- filters ------------------------------------------------------------------------------------


class _PeerFilter:
    """NeMo's sampler filters in one predicate, counting rejections by reason."""

    def __init__(self, config: LhotsePeerConfig, fits: Callable[[Any], str | None] | None) -> None:
        inf = math.inf
        self.min_d = config.min_example_duration if config.min_example_duration is not None else -1
        self.max_d = config.max_example_duration if config.max_example_duration is not None else inf
        self.max_t = config.max_tokens if config.max_tokens is not None else inf
        self.tps = config.tps_max if config.tps_max is not None else inf
        self.use_tokens = config.max_tokens is not None or config.tps_max is not None
        self.fits = fits  # cut -> why no bucket holds it (None: one does); None: all fit
        self.counts = dict.fromkeys(FILTER_REASONS, 0)

    @property
    def active(self) -> bool:
        bounded = self.min_d > 0 or self.max_d < math.inf
        return bounded or self.use_tokens or self.fits is not None

    def __call__(self, cut: Any) -> bool:
        d = cut.duration
        if d < self.min_d:
            self.counts["too_short"] += 1
            return False
        if d > self.max_d:
            self.counts["too_long"] += 1
            return False
        if self.use_tokens:
            t = cut.custom["num_tokens"]
            if t > self.max_t:
                self.counts["too_many_tokens"] += 1
                return False
            if t / d > self.tps:
                self.counts["tps"] += 1
                return False
        if self.fits is not None:
            misfit = self.fits(cut)
            if misfit is not None:
                self.counts[misfit] += 1
                return False
        return True


# --- estimation (bins=None) -----------------------------------------------------------------


def _estimate_bins_2d(cuts: Iterable[Any], config: LhotsePeerConfig) -> Bins2D:
    """lhotse's 1D estimate on the first N cuts, then equal-token sub-bins within each bin."""
    from itertools import islice

    from lhotse.dataset.sampling.dynamic_bucketing import estimate_duration_buckets

    assert config.num_subbuckets is not None
    head = list(islice(cuts, config.num_examples_for_bins))
    inner = estimate_duration_buckets(head, num_buckets=config.num_buckets)
    uppers = [*map(float, inner), math.inf]  # lhotse's last bucket is open-ended
    groups: list[list[float]] = [[] for _ in uppers]
    for cut in head:
        groups[bisect_left(uppers, cut.duration)].append(float(cut.custom["num_tokens"]))
    pairs: list[tuple[float, float]] = []
    for upper, toks in zip(uppers, groups, strict=True):
        if not toks:
            continue
        toks.sort()
        per_sub = sum(toks) / config.num_subbuckets
        acc = 0.0
        for t in toks:  # a new sub-bin edge each time a share of the tokens is passed
            if acc > per_sub:
                pairs.append((upper, t))
                acc = 0.0
            acc += t
        pairs.append((upper, toks[-1]))
    return tuple(sorted(set(pairs)))


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerRankResult:
    """What one rank's lhotse sampler did."""

    rank: int
    batches: list[list[str]]  # example ids of each batch, in order (empty if not kept)
    buckets: list[int]  # bucket index of each batch (its first example's bucket)
    batch_sizes: list[int]
    examples: int  # examples in all batches
    steps: int
    convert_s: float  # Example -> cut conversion (materialize=True; excluded from sampler_s)
    construct_s: float  # sampler construction, including lhotse's bin estimate if any
    first_batch_s: float  # construction start -> first batch
    sampler_s: float  # construction + time inside next()
    filtered: dict[str, int]  # rejected examples by reason
    bins: Bins1D | Bins2D  # the bins this rank's sampler used (bucket i = bins[i])
    num_lhotse_buckets: int  # buckets lhotse keeps (bins + 1 with a trailing empty bucket)

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.sampler_s if self.sampler_s > 0 else math.inf


@dataclass(frozen=True)
class LhotsePeerResult:
    """The lhotse peer's batches and timings, one entry per rank."""

    config: LhotsePeerConfig
    ranks: tuple[PeerRankResult, ...]
    lhotse_version: str
    warnings: tuple[str, ...] = field(default=())  # distinct lhotse warnings seen

    @property
    def examples(self) -> int:
        return sum(r.examples for r in self.ranks)

    @property
    def examples_per_s(self) -> float:
        """All ranks' examples over all ranks' sampler time (ranks run one after another)."""
        total = sum(r.sampler_s for r in self.ranks)
        return self.examples / total if total > 0 else math.inf

    @property
    def first_batch_s(self) -> float:
        """The slowest rank's time to first batch (a DDP step waits for every rank)."""
        return max(r.first_batch_s for r in self.ranks)

    @property
    def convert_s(self) -> float:
        return sum(r.convert_s for r in self.ranks)

    @property
    def filtered(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.ranks:
            for reason, n in r.filtered.items():
                out[reason] = out.get(reason, 0) + n
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures without the batch lists."""
        return {
            "lhotse_version": self.lhotse_version,
            "config": self.config.to_json(),
            "examples": self.examples,
            "steps": [r.steps for r in self.ranks],
            "examples_per_s": self.examples_per_s,
            "first_batch_s": self.first_batch_s,
            "convert_s": self.convert_s,
            "construct_s": [r.construct_s for r in self.ranks],
            "filtered": self.filtered,
            "warnings": list(self.warnings),
        }


# --- running ----------------------------------------------------------------------------------


def run_lhotse_peer(
    examples_per_rank: Sequence[Sequence[Example]], config: LhotsePeerConfig
) -> LhotsePeerResult:
    """Run lhotse's DynamicBucketingSampler for each rank over that rank's Examples."""
    if not examples_per_rank:
        raise ValueError("need the Examples of at least one rank")
    rows = [_ExampleRows(examples, config.needs_tokens) for examples in examples_per_rank]
    return _run(rows, config, keep_batches=True)


def _run(
    rows_per_rank: Sequence[Iterable[_Row]], config: LhotsePeerConfig, keep_batches: bool
) -> LhotsePeerResult:
    lhotse = _import_lhotse()
    world = len(rows_per_rank)
    seen: dict[str, None] = {}
    results = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # record each distinct warning once
        if config.rank_mode == "round_robin":
            cuts, convert_s = _cuts_for(_Concat(rows_per_rank), config)
            for rank in range(world):
                result = _run_rank(rank, world, cuts, config, keep_batches)
                results.append(_with_convert(result, convert_s if rank == 0 else 0.0))
        else:
            for rank, rows in enumerate(rows_per_rank):
                cuts, convert_s = _cuts_for(rows, config)
                result = _run_rank(rank, 1, cuts, config, keep_batches)
                results.append(_with_convert(result, convert_s))
                del cuts
    for w in caught:
        seen.setdefault(str(w.message))
    return LhotsePeerResult(config, tuple(results), lhotse.__version__, tuple(seen))


class _Concat:
    def __init__(self, parts: Sequence[Iterable[_Row]]) -> None:
        self.parts = parts

    def __iter__(self) -> Iterator[_Row]:
        for part in self.parts:
            yield from part


def _cuts_for(rows: Iterable[_Row], config: LhotsePeerConfig) -> tuple[Any, float]:
    if not config.materialize:
        return _LazyCuts(rows), 0.0
    start = time.perf_counter()
    cuts = [_make_cut(r) for r in rows]
    return cuts, time.perf_counter() - start


def _with_convert(result: PeerRankResult, convert_s: float) -> PeerRankResult:
    return replace(result, convert_s=convert_s)


def _run_rank(
    rank: int, world: int, cuts: Any, config: LhotsePeerConfig, keep_batches: bool
) -> PeerRankResult:
    from lhotse.dataset.sampling.dynamic_bucketing import DynamicBucketingSampler

    t0 = time.perf_counter()
    bins = config.bins
    if bins is None and config.num_subbuckets is not None:
        bins = _estimate_bins_2d(cuts, config)
    setup = _SamplerSetup(bins, config)
    sampler = DynamicBucketingSampler(
        cuts,
        buffer_size=config.buffer_size,
        shuffle=config.shuffle,
        drop_last=False,
        seed=config.seed + (RANK_SEED_STRIDE * rank if config.rank_mode == "per_rank" else 0),
        sync_buckets=config.sync_buckets,
        concurrent=config.concurrent,
        world_size=world,
        rank=rank if config.rank_mode == "round_robin" else 0,
        **setup.kwargs,
    )
    if bins is None:  # lhotse estimated its own 1D bins from the head of the stream
        bins = tuple(float(b) for b in sampler.duration_bins)
        setup.edges = list(bins)
    sampler.set_epoch(config.epoch)
    filt = _PeerFilter(config, setup.fits if setup.may_drop else None)
    if filt.active:
        sampler.filter(filt)
    construct_s = time.perf_counter() - t0

    batches: list[list[str]] = []
    buckets: list[int] = []
    sizes: list[int] = []
    inside = 0.0
    first_batch_s = math.nan
    it = iter(sampler)
    while True:
        t = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            inside += time.perf_counter() - t
            break
        inside += time.perf_counter() - t
        if not sizes:
            first_batch_s = time.perf_counter() - t0
        ids = [cut.id for cut in batch]
        bucket = setup.assign(next(iter(batch)))
        buckets.append(-1 if bucket is None else bucket)
        sizes.append(len(ids))
        if keep_batches:
            batches.append(ids)
    return PeerRankResult(
        rank=rank,
        batches=batches,
        buckets=buckets,
        batch_sizes=sizes,
        examples=sum(sizes),
        steps=len(sizes),
        convert_s=0.0,
        construct_s=construct_s,
        first_batch_s=first_batch_s,
        sampler_s=construct_s + inside,
        filtered=dict(filt.counts),
        bins=bins,
        num_lhotse_buckets=len(sampler.duration_bins) + 1,
    )


class _SamplerSetup:
    """Sampler keyword arguments for some bins, the cut -> bucket map and the bucket-fit test."""

    def __init__(self, bins: Bins1D | Bins2D | None, config: LhotsePeerConfig) -> None:
        from lhotse.dataset.sampling.dynamic_bucketing import FixedBucketBatchSizeConstraint

        trailing = config.trailing_empty_bucket
        self.kwargs: dict[str, Any] = {}
        self.grid: Grid2D | None = None
        self.edges: list[float] = []  # 1D: the edges lhotse bisects (inner edges by default)
        self.top = math.inf  # 1D: examples above the plan's last edge have no bucket
        if bins is not None and isinstance(bins[0], tuple):
            self.grid = Grid2D(bins, config.strict)
            time_2d, table_2d = _constraint_classes()
            if config.bucket_batch_sizes is not None:
                constraint = table_2d(self.grid, list(config.bucket_batch_sizes))
            else:
                constraint = time_2d(
                    self.grid,
                    max_duration=config.max_duration,
                    max_cuts=config.batch_size,
                    quadratic_duration=config.quadratic_duration,
                )
            self.kwargs["constraint"] = constraint
            # The constraint assigns buckets; lhotse only keeps len(duration_bins) + 1 of them.
            self.kwargs["duration_bins"] = list(bins) if trailing else list(bins[:-1])
            return
        if bins is None:  # lhotse estimates its bins in the sampler's constructor
            self.kwargs["num_buckets"] = config.num_buckets
            self.kwargs["num_cuts_for_bins_estimate"] = config.num_examples_for_bins
        else:
            edges = [float(b) for b in bins]
            self.edges = edges if trailing else edges[:-1]
            self.top = edges[-1]
            self.kwargs["duration_bins"] = self.edges
        if config.bucket_batch_sizes is not None:
            assert bins is not None  # checked by the config
            self.kwargs["constraint"] = FixedBucketBatchSizeConstraint(
                max_seq_len_buckets=[float(b) for b in bins],
                batch_sizes=list(config.bucket_batch_sizes),
            )
        else:
            self.kwargs["max_duration"] = config.max_duration
            self.kwargs["max_cuts"] = config.batch_size
            self.kwargs["quadratic_duration"] = config.quadratic_duration

    def assign(self, cut: Any) -> int | None:
        if self.grid is not None:
            return self.grid.assign(cut.duration, cut.custom["num_tokens"])
        return bisect_left(self.edges, cut.duration)

    @property
    def may_drop(self) -> bool:
        """Can an example fit no bucket (2D, or 1D above the plan's last edge)?"""
        return self.grid is not None or self.top < math.inf

    def fits(self, cut: Any) -> str | None:
        """None when a bucket holds the cut, else the reason (padless's assignment reasons)."""
        if self.grid is not None:
            return self.grid.misfit(cut.duration, cut.custom["num_tokens"])
        return None if cut.duration <= self.top else "outside_plan"


# --- peak RSS in a fresh subprocess --------------------------------------------------------------


@dataclass(frozen=True)
class PeerRssReport:
    """Peak RSS of a lhotse peer run in a fresh process."""

    peak_rss_mb: float  # the child's max RSS from its baseline on
    baseline_rss_mb: float  # its RSS after imports (python, torch, lhotse), before any data
    summary: dict[str, Any]  # LhotsePeerResult.summary() of the child's run

    @property
    def peak_over_baseline_mb(self) -> float:
        """What the run itself held at its peak: cuts, buffer, batches in flight."""
        return self.peak_rss_mb - self.baseline_rss_mb


def measure_lhotse_peer_rss(
    examples_per_rank: Sequence[Sequence[Example]],
    config: LhotsePeerConfig,
    timeout_s: float | None = None,
) -> PeerRssReport:
    """Run the peer on these Examples in a fresh Python process and report its peak RSS.

    The child reads (id, duration, num_tokens) per rank from temporary TSV files, streaming them
    when ``config.materialize`` is False, so its memory is lhotse's alone (texts and audio
    references are left out). Baseline = RSS right after importing torch and lhotse, where the
    kernel's peak mark is reset (``/proc/self/clear_refs``); peak = the process's own peak RSS
    (``VmHWM``) at the end. ``getrusage``'s max RSS is not used where /proc exists: it also
    keeps the peak of the fork before ``exec``, i.e. the parent's RSS. Without the reset (a
    kernel refusing it) the baseline is the import-time peak.
    """
    with tempfile.TemporaryDirectory(prefix="padless-lhotse-rss-") as tmp:
        work = Path(tmp)
        for rank, examples in enumerate(examples_per_rank):
            with open(work / f"rank{rank}.tsv", "w", newline="") as f:
                writer = csv.writer(f, delimiter="\t")
                for ex in examples:
                    if config.needs_tokens and ex.num_tokens is None:
                        raise ValueError(f"example {ex.id!r}: num_tokens is unknown")
                    tok = "" if ex.num_tokens is None else ex.num_tokens
                    writer.writerow((ex.id, repr(ex.duration), tok))
        (work / "config.json").write_text(json.dumps(config.to_json()))
        env = dict(os.environ, OMP_NUM_THREADS="1")
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "padless.sampling.lhotse_peer",
                str(work),
                str(len(examples_per_rank)),
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"lhotse peer subprocess failed:\n{proc.stderr[-4000:]}")
        report = json.loads((work / "result.json").read_text())
    return PeerRssReport(report["peak_rss_mb"], report["baseline_rss_mb"], report["summary"])


def _status_mb(field: str) -> float | None:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM) in MiB, None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _peak_rss_mb() -> float:
    # VmHWM is this process's own peak. getrusage's ru_maxrss also keeps the peak of the
    # pre-exec fork, i.e. of the parent process, which can be far larger than the child.
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _rss_child(work: Path, world: int) -> None:
    import gc

    import torch

    torch.set_num_threads(1)
    _import_lhotse()
    from lhotse.dataset.sampling import dynamic_bucketing  # noqa: F401  (part of the baseline)

    # Imports peak above their steady state: reset the mark so the peak is the run's own.
    gc.collect()
    current = _status_mb("VmRSS")
    baseline = current if (current is not None and _reset_peak_rss()) else _peak_rss_mb()
    config = LhotsePeerConfig.from_json(json.loads((work / "config.json").read_text()))
    rows = [_TsvRows(work / f"rank{r}.tsv") for r in range(world)]
    result = _run(rows, config, keep_batches=False)
    report = {
        "peak_rss_mb": _peak_rss_mb(),
        "baseline_rss_mb": baseline,
        "summary": result.summary(),
    }
    (work / "result.json").write_text(json.dumps(report))


if __name__ == "__main__":
    _rss_child(Path(sys.argv[1]), int(sys.argv[2]))
