"""Turn utterance plans into 16 kHz FLAC audio and NeMo manifest records (runs in worker
processes, one espeak-ng engine each)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from padless.data.corpus.config import CorpusConfig
from padless.data.corpus.espeak import Espeak
from padless.data.corpus.phrases import without_pnc
from padless.data.corpus.plan import UtterancePlan, plan_utterance
from padless.data.example import MODEL_SAMPLING_RATE


@dataclass(frozen=True)
class RenderedUtterance:
    """One synthesized utterance: its manifest record (without the audio path) and FLAC bytes."""

    plan: UtterancePlan
    num_samples: int  # at 16 kHz
    flac: bytes
    record: dict[str, Any]

    @property
    def duration(self) -> float:
        return self.num_samples / MODEL_SAMPLING_RATE


def speak(plan: UtterancePlan, text: str, engine: Espeak) -> np.ndarray:
    """Synthesize ``text`` in the plan's voice; int16 samples at 16 kHz, shape (num_samples,)."""
    pcm = engine.synthesize(text, plan.voice, plan.rate, plan.pitch, seed=plan.noise_seed)
    speech = resample(pcm, engine.sampling_rate)
    before, after = (round(s * MODEL_SAMPLING_RATE) for s in plan.silence)
    return np.pad(speech, (before, after))


def resample(pcm: np.ndarray, sampling_rate: int) -> np.ndarray:
    """int16 samples at ``sampling_rate`` -> int16 at 16 kHz (soxr's default "HQ" quality).

    Resampled in float64, then rounded and clipped here: soxr's int16 path gives results that
    depend on where the input array sits in memory (up to 2 LSB apart for ~0.3% of the demo
    corpus's utterances), so two corpora made from one seed differed; the float path does not.
    """
    speech = soxr.resample(pcm.astype(np.float64), sampling_rate, MODEL_SAMPLING_RATE)
    return np.clip(np.rint(speech), -32768, 32767).astype(np.int16)


def encode_flac(pcm: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, pcm, MODEL_SAMPLING_RATE, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def render(plan: UtterancePlan, config: CorpusConfig, engine: Espeak) -> RenderedUtterance:
    """Synthesize one utterance, dropping trailing sentences while it is over
    ``config.max_duration`` (a single sentence is kept whatever its length)."""
    max_samples = int(config.max_duration * MODEL_SAMPLING_RATE)
    kept = len(plan.sentences)
    while True:
        texts = plan.texts(kept)
        pcm = speak(plan, texts[plan.source_lang], engine)
        if len(pcm) <= max_samples or kept == 1:
            break
        kept -= 1

    def target(lang: str) -> str:
        return texts[lang] if plan.pnc else without_pnc(texts[lang])

    record: dict[str, Any] = {
        "id": plan.id,
        "duration": len(pcm) / MODEL_SAMPLING_RATE,
        "text": target(plan.target_lang),
        "source_lang": plan.source_lang,
        "target_lang": plan.target_lang,
        "taskname": plan.task,
        "pnc": "yes" if plan.pnc else "no",
    }
    if plan.task == "ast":
        record["source_text"] = target(plan.source_lang)  # what is said, for AST evaluation
    record["voice"] = plan.voice
    record["speaking_rate"] = plan.rate
    record["pitch"] = plan.pitch
    return RenderedUtterance(plan, len(pcm), encode_flac(pcm), record)


def render_batch(config: CorpusConfig, indices: range) -> list[RenderedUtterance]:
    """Worker entry point: plan and synthesize utterances ``indices`` with this process's engine."""
    engine = Espeak.instance()
    return [render(plan_utterance(config, i), config, engine) for i in indices]
