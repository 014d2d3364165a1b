"""What each utterance of the corpus says, in which voice, for which task: a pure function of
(config, seed, index).

Every utterance draws from its own RNG seeded by (seed, index), so utterance i is the same no
matter how many processes synthesize the corpus, in which order, or how long the corpus is.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from padless.data.corpus.config import CorpusConfig, Split
from padless.data.corpus.phrases import LANGUAGES, SENTENCES, join_sentences, number_alone
from padless.data.example import Task

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
