"""How the lhotse peer buckets and filters: NeMo's 2D assignment rule (`Grid2D`) and lhotse
constraints over it, the sampler's keyword arguments for some bins (`SamplerSetup`), NeMo's
filters counted under padless's reasons (`PeerFilter`), and the 2D bin estimate (``bins=None``).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable
from functools import cache
from itertools import islice
from typing import Any

from padless.peers.lhotse_config import (
    FILTER_REASONS,
    Bins1D,
    Bins2D,
    LhotsePeerConfig,
    import_lhotse,
)


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
def constraint_classes() -> tuple[type, type]:
    """lhotse constraint subclasses for 2D bins, defined once lhotse is importable."""
    import_lhotse()
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


# --- sampler settings for some bins ------------------------------------------------------------


class SamplerSetup:
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
            time_2d, table_2d = constraint_classes()
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


# --- filters --------------------------------------------------------------------------------


class PeerFilter:
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


# --- estimation (bins=None) ------------------------------------------------------------


def estimate_bins_2d(cuts: Iterable[Any], config: LhotsePeerConfig) -> Bins2D:
    """lhotse's 1D estimate on the first N cuts, then equal-token sub-bins within each bin."""
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
