"""Padding statistics of batches, per batch and aggregated (overall and per bucket).

A batch of ``n`` examples is padded to its longest input and its longest output, so

    audio padding = 1 - sum(durations) / (n * max(durations))
    token padding = 1 - sum(tokens) / (n * max(tokens))

Aggregates are ratios of sums over all batches (padding elements / padded elements), i.e. the
share of the encoder's and the decoder's positions spent on padding, not a mean of per-batch
ratios (which would weigh a batch of 3 like a batch of 300).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def batch_padding(durations: Sequence[float], tokens: Sequence[int]) -> tuple[float, float]:
    """(audio, token) padding ratios of one batch."""
    n = len(durations)
    if n == 0:
        return 0.0, 0.0
    audio = 1.0 - float(sum(durations)) / (n * float(max(durations)))
    max_t = float(max(tokens))
    token = 1.0 - float(sum(tokens)) / (n * max_t) if max_t > 0 else 0.0
    return audio, token


@dataclass
class PaddingTotals:
    """Sums over a set of batches, from which the padding ratios follow."""

    batches: int = 0
    examples: int = 0
    duration: float = 0.0  # sum of example durations (s)
    padded_duration: float = 0.0  # sum of batch_size * max duration (s)
    tokens: int = 0
    padded_tokens: int = 0

    def add(self, durations: Sequence[float], tokens: Sequence[int]) -> None:
        """One batch (plain sequences: a batch is small, numpy calls would cost more)."""
        n = len(durations)
        if n:
            self.add_sums(n, sum(durations), n * max(durations), sum(tokens), n * max(tokens))

    def add_sums(
        self, n: int, duration: float, padded_duration: float, tokens: int, padded_tokens: int
    ) -> None:
        self.batches += 1
        self.examples += n
        self.duration += duration
        self.padded_duration += padded_duration
        self.tokens += tokens
        self.padded_tokens += padded_tokens

    def merge(self, other: PaddingTotals) -> None:
        self.batches += other.batches
        self.examples += other.examples
        self.duration += other.duration
        self.padded_duration += other.padded_duration
        self.tokens += other.tokens
        self.padded_tokens += other.padded_tokens

    @property
    def audio_padding(self) -> float:
        return 1.0 - self.duration / self.padded_duration if self.padded_duration else 0.0

    @property
    def token_padding(self) -> float:
        return 1.0 - self.tokens / self.padded_tokens if self.padded_tokens else 0.0

    @property
    def mean_batch_size(self) -> float:
        return self.examples / self.batches if self.batches else 0.0

    @property
    def mean_batch_seconds(self) -> float:
        """Mean audio seconds per batch (unpadded)."""
        return self.duration / self.batches if self.batches else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "examples": self.examples,
            "audio_padding": round(self.audio_padding, 5),
            "token_padding": round(self.token_padding, 5),
            "mean_batch_size": round(self.mean_batch_size, 3),
            "mean_batch_seconds": round(self.mean_batch_seconds, 3),
        }


@dataclass
class BucketCounters:
    """What happened in one bucket: padding of its batches and how they were chosen."""

    padding: PaddingTotals = field(default_factory=PaddingTotals)
    drawn: int = 0  # steps whose bucket draw named this bucket
    fallbacks: int = 0  # batches taken here because the drawn bucket was not ready
    partial: int = 0  # batches emitted below the policy's full size (epoch end, small buffer)
    dropped: int = 0  # examples assigned here that were dropped (rank balancing)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.padding.to_json(),
            "drawn": self.drawn,
            "fallbacks": self.fallbacks,
            "partial": self.partial,
            "dropped": self.dropped,
        }


class SamplerStats:
    """Counters a sampler keeps as it runs (cheap: a few additions per batch)."""

    def __init__(self, num_buckets: int) -> None:
        self.total = PaddingTotals()
        self.buckets = [BucketCounters() for _ in range(num_buckets)]

    def record(
        self, bucket: int, drawn: int, durations: Sequence[float], tokens: Sequence[int], full: bool
    ) -> None:
        n = len(durations)
        if not n:
            return
        sums = (n, sum(durations), n * max(durations), sum(tokens), n * max(tokens))
        self.total.add_sums(*sums)
        c = self.buckets[bucket]
        c.padding.add_sums(*sums)
        self.buckets[drawn].drawn += 1
        if bucket != drawn:
            c.fallbacks += 1
        if not full:
            c.partial += 1

    def merge(self, other: SamplerStats) -> None:
        self.total.merge(other.total)
        for mine, theirs in zip(self.buckets, other.buckets, strict=True):
            mine.padding.merge(theirs.padding)
            mine.drawn += theirs.drawn
            mine.fallbacks += theirs.fallbacks
            mine.partial += theirs.partial
            mine.dropped += theirs.dropped

    def per_bucket_json(self) -> list[dict[str, Any]]:
        return [{"bucket": i, **c.to_json()} for i, c in enumerate(self.buckets)]
