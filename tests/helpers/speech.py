"""Speech fixtures shared by the inference and evaluation tests (registered for every test
folder by ``pytest_plugins`` in tests/conftest.py; session-scoped, so built only when a test
asks): a few short utterances of the embedded corpus, a tokenizer trained on the corpus texts,
and small models trained on those utterances.

Randomly initialised AED models with a tied output head just copy their last input token
forever, which would make every decoding test trivially pass; a model trained for a few dozen
steps emits varied tokens, EOS at different steps, and confident but imperfect predictions.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import orjson
import pytest
import soundfile as sf
import torch

from padless.data.corpus.config import CorpusConfig
from padless.data.corpus.espeak import Espeak
from padless.data.corpus.plan import plan_utterance
from padless.data.corpus.synth import render
from padless.data.dataset import SpeechBatch, collate
from padless.data.example import ArrayAudio, Example
from padless.data.tokenizer import CanaryTokenizer, TokenizerTrainConfig, train_tokenizer
from padless.model import (
    AEDModel,
    DecoderConfig,
    EncoderConfig,
    FeatureConfig,
    ModelConfig,
    SpecAugmentConfig,
)

CORPUS = CorpusConfig(seed=0)
MAX_SECONDS = 2.8  # short utterances keep training and decoding fast


@dataclass(frozen=True)
class Utterances:
    examples: list[Example]  # ArrayAudio examples with text, languages, task, pnc
    waves: list[np.ndarray]  # float32, 16 kHz


@pytest.fixture(scope="session")
def utterances() -> Utterances:
    """The short utterances (< 2.8 s) among the corpus's first 16: ASR and AST, 4 languages."""
    engine = Espeak.instance()
    examples, waves = [], []
    for index in range(16):
        utt = render(plan_utterance(CORPUS, index), CORPUS, engine)
        if utt.duration >= MAX_SECONDS:
            continue
        wave = sf.read(io.BytesIO(utt.flac), dtype="float32")[0]
        rec = utt.record
        examples.append(
            Example(
                id=rec["id"],
                duration=utt.duration,
                audio=ArrayAudio(wave, 16_000),
                text=rec["text"],
                source_lang=rec["source_lang"],
                target_lang=rec["target_lang"],
                task=rec["taskname"],
                pnc=rec["pnc"] == "yes",
                # AST: what is said, as the corpus manifests give it (CTC targets need it)
                extras={"source_text": rec["source_text"]} if "source_text" in rec else None,
            )
        )
        waves.append(wave)
    assert len(examples) >= 5, "the corpus plan changed: too few short utterances"
    assert {ex.task for ex in examples} == {"asr", "ast"}
    return Utterances(examples, waves)


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> CanaryTokenizer:
    """64 BPE pieces per language, trained on the texts of the corpus's first 300 plans."""
    root = tmp_path_factory.mktemp("corpus-tokenizer")
    rows = [
        {"audio_filepath": f"{i}-{lang}.flac", "duration": 1.0, "text": text, "lang": lang}
        for i in range(300)
        for lang, text in plan_utterance(CORPUS, i).texts().items()
    ]
    manifest = root / "texts.jsonl"
    manifest.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    config = TokenizerTrainConfig(vocab_per_lang=64)
    return train_tokenizer([str(manifest)], root / "tok", config).tokenizer


def _training_batch(utts: Utterances, tok: CanaryTokenizer) -> SpeechBatch:
    prompts = [tok.prompt_ids_for(ex) for ex in utts.examples]
    sequences = [
        p + tok.encode(ex.text or "", ex.target_lang or "") + [tok.eos_id]
        for p, ex in zip(prompts, utts.examples, strict=True)
    ]
    ids = [ex.id for ex in utts.examples]
    return collate(utts.waves, sequences, [len(p) for p in prompts], ids, tok.pad_id)


def _small_config(vocab_size: int) -> ModelConfig:
    """A model small enough to train in seconds on one CPU thread (no dropout, no SpecAugment)."""
    return ModelConfig(
        name="test-small",
        vocab_size=vocab_size,
        features=FeatureConfig(n_mels=80),
        spec_augment=SpecAugmentConfig(freq_masks=0, time_masks=0),
        encoder=EncoderConfig(
            d_model=96,
            n_layers=2,
            n_heads=2,
            subsampling_channels=32,
            dropout=0.0,
            attn_dropout=0.0,
        ),
        decoder=DecoderConfig(d_model=96, n_layers=2, n_heads=2, dropout=0.0, attn_dropout=0.0),
    )


def _train(model: AEDModel, batch: SpeechBatch, steps: int, lr: float = 3e-3) -> list[float]:
    """Full-batch AdamW steps; returns the losses."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(steps):
        loss = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="session")
def partly_trained(utterances: Utterances, tokenizer: CanaryTokenizer) -> AEDModel:
    """30 steps: varied outputs that stop at EOS, some right and some wrong."""
    torch.manual_seed(0)
    model = AEDModel(_small_config(tokenizer.vocab_size))
    _train(model, _training_batch(utterances, tokenizer), steps=30)
    return model.eval()


@pytest.fixture(scope="session")
def training_batch(utterances: Utterances, tokenizer: CanaryTokenizer) -> SpeechBatch:
    """The utterances as one `SpeechBatch` (prompt + text + EOS)."""
    return _training_batch(utterances, tokenizer)


@pytest.fixture(scope="session")
def small_config() -> Callable[[int], ModelConfig]:
    return _small_config


@pytest.fixture(scope="session")
def train() -> Callable[..., list[float]]:
    return _train
