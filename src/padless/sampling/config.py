"""The frozen configs of the sampling engine: how a plan is estimated (`PlanConfig`) and how
a sampler forms batches (`SamplerConfig`), with the names of their choices.

Choices that carry settings of their own are small classes, as the batch-size policies are:
batch formation (`SortedBatching`, `RandomBatching`) and the bucket draw (`InflowDraw`,
`UniformDraw`, in `padless.sampling.sync`). Each has a ``kind``, the short name a config file
or the command line gives (``batching: {kind: sorted, lanes: 32}``). The command line takes its
defaults from here; the code that uses each field is named beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal

from padless.sampling.filters import FilterConfig
from padless.sampling.sync import BUCKET_DRAWS, BucketDraw, InflowDraw, UniformDraw

#: Bucket edge estimators (`padless.sampling.bins`).
BinEstimator = Literal["equal-duration", "optimal"]
BIN_ESTIMATORS: tuple[BinEstimator, ...] = ("equal-duration", "optimal")
#: Bucket assignment rules (`padless.sampling.assign`).
AssignMode = Literal["strict", "flexible"]
ASSIGN_MODES: tuple[AssignMode, ...] = ("strict", "flexible")
#: Kinds of bucket draw (`BUCKET_DRAWS`) and of batch formation (`BATCHINGS`), as choices.
BucketDrawKind = Literal["inflow", "uniform"]
BatchingKind = Literal["sorted", "random"]
#: Examples read to estimate a plan on (`padless.sampling.estimate.plan_from_examples`).
PLAN_SAMPLE_SIZE = 100_000


@dataclass(frozen=True)
class SortedBatching:
    """Batches of examples near in output length (low token padding): each bucket's buffer is
    split into ``lanes`` at the plan's token quantiles, and a batch is cut from a window of
    neighbouring lanes (`padless.sampling.engine`)."""

    kind: ClassVar[str] = "sorted"
    #: Output-length lanes per bucket (at the plan's token quantiles). 1: random batches.
    lanes: int = 32
    #: A batch is a random part of the ``spread x batch size`` examples nearest in output length
    #: (the rest stays in the buffer). 1.0 takes the nearest exactly: least token padding; on
    #: the Canary-like mix batch-mates then change between epochs more than with random batches
    #: already. Above 1.0 they change more, at a cost in token padding (1.1: ~1-3 points); see
    #: docs/sampling.md.
    spread: float = 1.0

    def __post_init__(self) -> None:
        if self.lanes < 1:
            raise ValueError(f"lanes must be >= 1, got {self.lanes}")
        if not self.spread >= 1.0:
            raise ValueError(f"spread must be >= 1, got {self.spread}")


@dataclass(frozen=True)
class RandomBatching:
    """Batches of random members of a bucket (the paper's, and lhotse's)."""

    kind: ClassVar[str] = "random"


#: How a bucket's buffer is cut into batches.
Batching = SortedBatching | RandomBatching
#: The batch formations by their ``kind``.
BATCHINGS: dict[str, type[Batching]] = {c.kind: c for c in (SortedBatching, RandomBatching)}


def strategy_json(strategy: Batching | BucketDraw) -> dict[str, Any]:
    """``{"kind": ..., **fields}``: a strategy as a config file writes it."""
    return {"kind": strategy.kind, **asdict(strategy)}


def strategy_from_json(
    choices: Mapping[str, type[Any]], data: str | Mapping[str, Any], what: str
) -> Any:
    """The strategy ``{"kind": name, **fields}`` (or just its kind) names among ``choices``."""
    obj = {"kind": data} if isinstance(data, str) else dict(data)
    kind = obj.pop("kind", None)
    if not isinstance(kind, str) or kind not in choices:
        raise ValueError(f"unknown {what} kind {kind!r}; choose from {sorted(choices)}")
    cls = choices[kind]
    unknown = set(obj) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"{what} {kind!r} has no setting(s) {sorted(unknown)}")
    return cls(**obj)


@dataclass(frozen=True)
class PlanConfig:
    """How `estimate_plan` places the edges."""

    #: Duration bins. 60 optimal 1D bins with sorted batches meet the padding goals measured in
    #: docs/sampling.md; the paper uses 30 (x2 token sub-bins).
    num_buckets: int = 60
    #: Token sub-bins per duration bin (1: a 1D plan).
    num_subbuckets: int = 1
    #: Edge estimator for both dimensions (see `padless.sampling.bins`).
    bins: BinEstimator = "optimal"
    #: ``optimal`` only: each bin keeps at least this fraction of an equal share of the sample's
    #: cumulative duration (tokens for sub-bins), so no bucket starves.
    min_share: float = 0.25

    def __post_init__(self) -> None:
        if self.num_buckets < 1 or self.num_subbuckets < 1:
            raise ValueError("num_buckets and num_subbuckets must be >= 1")
        if self.bins not in BIN_ESTIMATORS:
            raise ValueError(f"unknown bins {self.bins!r}; choose from {BIN_ESTIMATORS}")
        if not 0.0 <= self.min_share <= 1.0:
            raise ValueError(f"min_share must be in [0, 1], got {self.min_share}")


@dataclass(frozen=True)
class SamplerConfig:
    """Everything that decides which batches a sampler yields (with the plan and the policy).

    Defaults are padless's; `SamplerConfig.paper` gives the paper's (lhotse-like) baseline.
    """

    #: Examples held across all buckets. None: sized from the plan and the policy so that the
    #: average bucket holds ``buffer_batches`` batches (sorted batches stay narrow and buckets
    #: stay ready), at least 20,000 examples: ~20k for 17 s utterances and 360 s batches,
    #: ~70k for 4 s ones; ~350 bytes of metadata each.
    buffer_size: int | None = None
    #: With ``buffer_size=None``: batches the average bucket holds.
    buffer_batches: int = 16
    #: Bucket assignment: "flexible" keeps long-transcript outliers, "strict" drops them.
    assignment: AssignMode = "flexible"
    #: Batch formation within a bucket: sorted windows (low token padding) or random.
    batching: Batching = field(default_factory=SortedBatching)
    #: Bucket draw: inflow (rate-matched, stratified) or uniform (lhotse's).
    bucket_draw: BucketDraw = field(default_factory=InflowDraw)
    #: Same bucket-draw RNG on every rank (synchronized buckets, no communication).
    sync: bool = True
    #: Seed of every RNG; ranks derive theirs from (seed, epoch, rank).
    seed: int = 0
    #: Step-based training: never end; each rank's data epochs advance on their own.
    infinite: bool = False
    #: Fraction of the buffer read before the first batch (the paper: 10%).
    start_fill: float = 0.1
    #: Steps over which the buffer target grows from ``start_fill`` to full. Short: until
    #: the buffer is full, buckets hold few batches and ranks fall back more often.
    ramp_steps: int = 32
    #: Examples per read chunk (vectorised work unit); capped at the buffer size // 8.
    chunk_size: int = 1024
    #: Read in a producer thread (`ConcurrentReader`) instead of in line.
    concurrent: bool = False
    #: Chunks the producer may read ahead; None: one buffer's worth.
    queue_chunks: int | None = None
    #: Finite mode with several ranks: equalize batch counts across ranks (see `balance`).
    balance_ranks: bool = True
    #: With ``sync``: drain the ranks' buffers jointly (same bucket at every step) unless that
    #: takes more than this fraction more steps than draining separately (ranks whose data
    #: differ a lot need many split batches to stay aligned).
    joint_drain_tolerance: float = 0.5
    #: Recent batches remembered so `state_dict(consumed_steps=...)` can rewind over batches a
    #: DataLoader prefetched but the training loop did not consume.
    resume_lookback: int = 64
    #: Override the plan's filters (None: use the filters the plan was estimated with).
    filters: FilterConfig | None = None

    def __post_init__(self) -> None:
        if self.buffer_size is not None and self.buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {self.buffer_size}")
        if self.buffer_batches < 1:
            raise ValueError(f"buffer_batches must be >= 1, got {self.buffer_batches}")
        if self.assignment not in ASSIGN_MODES:
            raise ValueError(f"unknown assignment {self.assignment!r}; choose from {ASSIGN_MODES}")
        if not isinstance(self.batching, SortedBatching | RandomBatching):
            raise ValueError(f"batching must be one of {sorted(BATCHINGS)}, got {self.batching!r}")
        if not isinstance(self.bucket_draw, InflowDraw | UniformDraw):
            raise ValueError(
                f"bucket_draw must be one of {sorted(BUCKET_DRAWS)}, got {self.bucket_draw!r}"
            )
        if not 0.0 < self.start_fill <= 1.0:
            raise ValueError(f"start_fill must be in (0, 1], got {self.start_fill}")
        if self.ramp_steps < 0 or self.chunk_size < 1 or self.resume_lookback < 0:
            raise ValueError("ramp_steps, resume_lookback must be >= 0 and chunk_size >= 1")
        if not self.joint_drain_tolerance >= 0.0:
            raise ValueError(
                f"joint_drain_tolerance must be >= 0, got {self.joint_drain_tolerance}"
            )

    @classmethod
    def paper(cls, **overrides: Any) -> SamplerConfig:
        """The paper's sampler as lhotse implements it: random batches, uniform bucket draws,
        strict 2D assignment (use with an equal-duration plan)."""
        paper: dict[str, Any] = {
            "batching": RandomBatching(),
            "bucket_draw": UniformDraw(),
            "assignment": "strict",
        }
        return cls(**{**paper, **overrides})

    def to_json(self) -> dict[str, Any]:
        """Every field; the strategies as ``{"kind": ..., **fields}``, filters as a dict."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["batching"] = strategy_json(self.batching)
        out["bucket_draw"] = strategy_json(self.bucket_draw)
        out["filters"] = None if self.filters is None else self.filters.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SamplerConfig:
        """The inverse of `to_json`; absent fields keep their defaults, unknown ones fail.
        A strategy may be given by its kind alone (``"batching": "random"``)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown sampler settings {sorted(unknown)}")
        obj = dict(data)
        if "batching" in obj:
            obj["batching"] = strategy_from_json(BATCHINGS, obj["batching"], "batching")
        if "bucket_draw" in obj:
            obj["bucket_draw"] = strategy_from_json(BUCKET_DRAWS, obj["bucket_draw"], "bucket_draw")
        if obj.get("filters") is not None:
            obj["filters"] = FilterConfig.from_json(obj["filters"])
        return cls(**obj)
