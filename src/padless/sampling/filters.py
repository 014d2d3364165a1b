"""Example filters applied before bucketing, each counting what it removes by reason.

All filters run on whole chunks of lengths (numpy masks), so they cost nothing per example in
Python. An example failing several filters is counted once, under the first reason in
`FILTER_REASONS` order. Bounds are inclusive: ``min_duration <= d <= max_duration``,
``tokens <= max_tokens``, ``tokens / d <= tps_max``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from padless.sampling.lengths import tokens_per_second

#: Reasons an example is filtered, in the order they are checked.
FILTER_REASONS = ("too_short", "too_long", "too_many_tokens", "tps")


@dataclass(frozen=True)
class FilterConfig:
    """Which examples the sampler keeps; ``None`` disables a filter."""

    #: Shortest kept input (seconds). The paper trains on 0.5-40 s.
    min_duration: float | None = None
    #: Longest kept input (seconds); also the upper edge of the last duration bin of a plan.
    max_duration: float | None = None
    #: Most kept output tokens (prompt + text + EOS).
    max_tokens: int | None = None
    #: Most kept output tokens per input second. Off by default; the paper uses 25 to drop
    #: low-quality (e.g. hallucinated synthetic) transcripts, which destabilise small decoders.
    tps_max: float | None = None

    def __post_init__(self) -> None:
        for name in ("min_duration", "max_duration", "max_tokens", "tps_max"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"filter {name} must be > 0, got {value}")
        lo, hi = self.min_duration, self.max_duration
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min_duration {lo} > max_duration {hi}")

    @property
    def active(self) -> bool:
        return any(v is not None for v in asdict(self).values())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FilterConfig:
        return cls(
            **{k: data.get(k) for k in ("min_duration", "max_duration", "max_tokens", "tps_max")}
        )

    def apply(self, durations: np.ndarray, tokens: np.ndarray, counts: Counter[str]) -> np.ndarray:
        """Boolean keep-mask for a chunk; adds the number removed per reason to ``counts``.

        durations: (N,) float64 seconds; tokens: (N,) int64.
        """
        keep = durations > 0  # a zero or negative duration never reaches here from a reader
        if not keep.all():
            counts["bad_duration"] += int(np.count_nonzero(~keep))
        if self.min_duration is not None:
            keep = _drop(keep, durations < self.min_duration, "too_short", counts)
        if self.max_duration is not None:
            keep = _drop(keep, durations > self.max_duration, "too_long", counts)
        if self.max_tokens is not None:
            keep = _drop(keep, tokens > self.max_tokens, "too_many_tokens", counts)
        if self.tps_max is not None:
            keep = _drop(keep, tokens_per_second(durations, tokens) > self.tps_max, "tps", counts)
        return keep


def _drop(keep: np.ndarray, fails: np.ndarray, reason: str, counts: Counter[str]) -> np.ndarray:
    newly = fails & keep
    n = int(np.count_nonzero(newly))
    if n:
        counts[reason] += n
        return keep & ~fails
    return keep
