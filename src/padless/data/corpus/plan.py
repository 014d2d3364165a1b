"""What each utterance of the corpus says, in which voice, for which task: a pure function of
(config, seed, index).

Every utterance draws from its own RNG seeded by (seed, index), so utterance i is the same no
matter how many processes synthesize the corpus, in which order, or how long the corpus is.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from padless.data.corpus.phrases import LANGUAGES, SENTENCES, join_sentences, number_alone
from padless.data.example import Task

Split = Literal["train", "dev", "test"]
SPLITS: tuple[Split, ...] = ("train", "dev", "test")

# espeak-ng base voices per language (accents) and voice variants (speaker timbre, pitch range,
# formants; the klatt ones use a different synthesizer). Every combination exists in the wheel.
BASE_VOICES: dict[str, tuple[str, ...]] = {
    "en": ("en-us", "en"),
    "de": ("de",),
    "fr": ("fr", "fr-be"),
    "es": ("es", "es-419"),
}
VOICE_VARIANTS: tuple[str, ...] = (
    "", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7",
    "+f1", "+f2", "+f3", "+f4", "+f5", "+klatt", "+klatt2", "+klatt3", "+klatt4",
)  # fmt: skip


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


@dataclass(frozen=True)
class UtterancePlan:
    """One utterance before synthesis: its parallel sentences, task, voice and split."""

    index: int
    id: str
    split: Split
    source_lang: str
    target_lang: str
    task: Task
    pnc: bool
    sentences: tuple[dict[str, str], ...]  # each: language -> the sentence in that language
    voice: str
    rate: int
    pitch: int
    silence: tuple[float, float]  # seconds before, after
    noise_seed: int  # of espeak-ng's noise sources (breathy voices, fricatives)

    def texts(self, num_sentences: int | None = None) -> dict[str, str]:
        """The utterance in every language, using its first ``num_sentences`` sentences."""
        return join_sentences(list(self.sentences[:num_sentences]))


# Weights of 1..6 sentences per utterance: mostly short, a tail up to ~20 s.
_SENTENCE_COUNT_WEIGHTS = (30, 22, 16, 12, 10, 10)


def plan_utterance(config: CorpusConfig, index: int) -> UtterancePlan:
    """The plan of utterance ``index``; depends only on ``config`` (not ``hours``) and ``index``."""
    rng = random.Random(f"padless-corpus:{config.seed}:{index}")  # str seeds hash with SHA-512

    u = rng.random()
    split: Split = (
        "dev"
        if u < config.dev_fraction
        else "test"
        if u < config.dev_fraction + config.test_fraction
        else "train"
    )

    task: Task
    if rng.random() < config.asr_fraction:
        task, source = "asr", rng.choice(LANGUAGES)
        target = source
    else:
        task, other = "ast", rng.choice([lang for lang in LANGUAGES if lang != "en"])
        source, target = (other, "en") if rng.random() < 0.5 else ("en", other)
    pnc = rng.random() < config.pnc_fraction

    if rng.random() < config.number_alone_fraction:
        sentences: tuple[dict[str, str], ...] = (number_alone(rng),)
    else:
        weights = _SENTENCE_COUNT_WEIGHTS[: config.max_sentences]
        count = rng.choices(range(1, len(weights) + 1), weights=weights)[0]
        sentences = tuple(rng.choice(SENTENCES)(rng) for _ in range(count))

    voice = rng.choice(BASE_VOICES[source]) + rng.choice(VOICE_VARIANTS)
    return UtterancePlan(
        index=index,
        id=f"s{config.seed}-{index:07d}",
        split=split,
        source_lang=source,
        target_lang=target,
        task=task,
        pnc=pnc,
        sentences=sentences,
        voice=voice,
        rate=rng.randint(*config.rate_range),
        pitch=rng.randint(*config.pitch_range),
        silence=(rng.uniform(*config.silence_range), rng.uniform(*config.silence_range)),
        noise_seed=rng.getrandbits(31),
    )
