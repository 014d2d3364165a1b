"""`CorpusConfig`: what `padless corpus synth` generates (kept free of heavy imports so the
command line can read its defaults cheaply)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Split = Literal["train", "dev", "test"]
SPLITS: tuple[Split, ...] = ("train", "dev", "test")


@dataclass(frozen=True)
class CorpusConfig:
    """What `padless corpus synth` generates. Same config -> same texts and same audio bytes."""

    hours: float = 0.6
    """Total audio to generate; utterances are added in index order until this is reached."""
    seed: int = 0
    """Seed of every random choice (texts, tasks, voices, splits)."""
    asr_fraction: float = 0.6
    """Share of ASR utterances (source language uniform over the four); the rest is AST, split
    evenly between X->en (X in de/es/fr) and en->X."""
    pnc_fraction: float = 0.75
    """Share of targets with punctuation and capitals; the rest are lower-case, unpunctuated."""
    dev_fraction: float = 0.05
    """Share of utterances in dev.jsonl."""
    test_fraction: float = 0.05
    """Share of utterances in test.jsonl (the rest go to train.jsonl)."""
    number_alone_fraction: float = 0.15
    """Share of utterances that are a bare number (the shortest, ~0.5-2 s)."""
    max_sentences: int = 6
    """Most sentences in one utterance (the longest, ~20 s)."""
    max_duration: float = 20.0
    """Seconds; a longer synthesis drops its last sentence until it fits."""
    rate_range: tuple[int, int] = (130, 210)
    """Speaking rate in words per minute, drawn uniformly (espeak-ng's default is 175)."""
    pitch_range: tuple[int, int] = (30, 70)
    """Base pitch 0-100, drawn uniformly (50 is the voice's default)."""
    silence_range: tuple[float, float] = (0.05, 0.3)
    """Seconds of silence added before and after the speech (each drawn uniformly); espeak-ng
    itself leaves almost none, recorded speech has some."""
    shard_size: int = 500
    """Utterances per tar shard under shards/."""

    def __post_init__(self) -> None:
        if not self.hours > 0:
            raise ValueError(f"hours must be positive, got {self.hours}")
        if not 0 <= self.dev_fraction + self.test_fraction < 1:
            raise ValueError("dev_fraction + test_fraction must be in [0, 1)")
        for name in ("asr_fraction", "pnc_fraction", "number_alone_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        low, high = self.silence_range
        if not 0 <= low <= high:
            raise ValueError(
                f"silence_range must satisfy 0 <= low <= high, got {self.silence_range}"
            )
        if self.max_sentences < 1 or self.max_duration <= 0 or self.shard_size < 1:
            raise ValueError("max_sentences, max_duration and shard_size must be positive")
