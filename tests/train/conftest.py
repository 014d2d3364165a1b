"""Training fixtures: a tiny synthesized corpus (manifests and tar shards), its tokenizer and
a small model checkpoint to start from."""

from __future__ import annotations

import orjson
import pytest
import torch
from trainrun import Corpus

from padless.data.corpus.config import CorpusConfig
from padless.data.corpus.plan import plan_utterance
from padless.data.corpus.writer import synthesize_corpus
from padless.data.tokenizer import TokenizerTrainConfig, train_tokenizer
from padless.model import (
    AEDModel,
    DecoderConfig,
    EncoderConfig,
    FeatureConfig,
    ModelConfig,
    save_checkpoint,
)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """~2.5 minutes of synthesized speech in four languages (seconds to make), utterances of
    at most 6 s, a 64-piece-per-language tokenizer and a 2+1-layer model of width 64."""
    root = tmp_path_factory.mktemp("train-corpus")
    config = CorpusConfig(hours=0.04, max_duration=6.0, dev_fraction=0.1)
    synthesize_corpus(config, root, workers=1, progress=False)
    # The tokenizer learns from the texts of many more utterances than the audio holds.
    texts = root / "texts.jsonl"
    texts.write_bytes(
        b"".join(
            orjson.dumps({"audio_filepath": "x.flac", "duration": 1.0, "text": t, "lang": lang})
            + b"\n"
            for i in range(300)
            for lang, t in plan_utterance(config, i).texts().items()
        )
    )
    tok = train_tokenizer(
        [str(texts)], root / "tokenizer", TokenizerTrainConfig(vocab_per_lang=64)
    ).tokenizer
    model_config = ModelConfig(
        name="test-train",
        vocab_size=tok.vocab_size,
        features=FeatureConfig(n_mels=64),
        encoder=EncoderConfig(
            d_model=64, n_layers=2, n_heads=2, subsampling_channels=16, dropout=0.1
        ),
        decoder=DecoderConfig(d_model=64, n_layers=1, n_heads=2, dropout=0.1),
    )
    torch.manual_seed(0)
    save_checkpoint(root / "model.pt", AEDModel(model_config), tokenizer=tok)
    return Corpus(
        root,
        root / "train.jsonl",
        root / "shards" / "train",
        root / "dev.jsonl",
        root / "tokenizer",
        root / "model.pt",
    )
