"""A tiny `AEDModel` config and a hand-made three-utterance `SpeechBatch` for loss tests."""

from __future__ import annotations

import dataclasses

import numpy as np

from padless.data.dataset import SpeechBatch, collate
from padless.model import PRESETS, LossConfig, ModelConfig

VOCAB = 64


def tiny_config(**loss: object) -> ModelConfig:
    cfg = dataclasses.replace(PRESETS["tiny-canary-1b"], vocab_size=VOCAB)
    return dataclasses.replace(cfg, loss=LossConfig(**loss)) if loss else cfg  # type: ignore[arg-type]


def make_batch(seed: int = 0) -> SpeechBatch:
    rng = np.random.default_rng(seed)
    seconds = [1.3, 0.7, 2.1]
    audio = [(0.1 * rng.standard_normal(int(s * 16_000))).astype(np.float32) for s in seconds]
    prompts = [[2, 8, 3, 8, 5], [2, 9, 3, 9, 6], [2, 8, 4, 9]]  # last one shorter on purpose
    texts = [rng.integers(12, VOCAB, n).tolist() for n in (7, 3, 5)]
    sequences = [p + t + [1] for p, t in zip(prompts, texts, strict=True)]
    return collate(audio, sequences, [len(p) for p in prompts], ["a", "b", "c"], pad_id=0)
