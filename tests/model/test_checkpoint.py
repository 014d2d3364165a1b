"""Checkpoints are self-contained: config, weights and tokenizer in one file."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import orjson
import pytest
import torch

from padless.data.tokenizer import CanaryTokenizer, TokenizerTrainConfig, train_tokenizer
from padless.model import (
    PRESETS,
    AEDModel,
    get_config,
    load_checkpoint,
    save_checkpoint,
)


def _trained_a_little(vocab: int = 48) -> AEDModel:
    cfg = dataclasses.replace(PRESETS["tiny-canary-1b-small-decoder"], vocab_size=vocab)
    model = AEDModel(cfg)
    # Change batch-norm running statistics so buffers are part of what must round-trip.
    model.train()
    with torch.no_grad():
        model.encode(torch.randn(2, 16_000), torch.tensor([16_000, 9_000]))
    return model.eval()


def test_round_trip_reproduces_outputs_exactly(tmp_path: Path) -> None:
    model = _trained_a_little()
    path = tmp_path / "ckpt" / "model.pt"
    save_checkpoint(path, model, extra={"step": 12, "note": "x"})
    assert get_config(path) == model.config
    loaded = load_checkpoint(path)
    assert loaded.config == model.config
    assert loaded.extra == {"step": 12, "note": "x"}
    assert loaded.tokenizer_files is None
    assert not loaded.model.training
    audio, lens = torch.randn(2, 12_000), torch.tensor([12_000, 7_000])
    tokens = torch.tensor([[2, 8, 3, 8, 5, 20], [2, 9, 3, 9, 6, 30]])
    with torch.no_grad():
        expected = model(audio, lens, tokens)
        got = loaded.model(audio, lens, tokens)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"], "no temp files left"


def _small_tokenizer(tmp_path: Path) -> CanaryTokenizer:
    words = {
        "en": ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "sings"],
        "de": ["der", "schnelle", "braune", "Fuchs", "springt", "über", "müde", "Hunde"],
    }
    rng = random.Random(0)
    rows = [
        {
            "audio_filepath": f"{lang}{i}.wav",
            "duration": 1.0,
            "text": " ".join(rng.choices(ws, k=8)),
            "lang": lang,
        }
        for lang, ws in words.items()
        for i in range(200)
    ]
    manifest = tmp_path / "texts.jsonl"
    manifest.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    config = TokenizerTrainConfig(vocab_per_lang=64)
    return train_tokenizer([str(manifest)], tmp_path / "tok", config).tokenizer


def test_tokenizer_travels_inside_the_checkpoint(tmp_path: Path) -> None:
    tokenizer = _small_tokenizer(tmp_path)
    model = _trained_a_little(vocab=tokenizer.vocab_size)
    text = "the lazy fox sings"
    for source in (tokenizer, tmp_path / "tok"):  # an object or its saved directory
        save_checkpoint(tmp_path / "m.pt", model, tokenizer=source)
        (tmp_path / "tok").rename(tmp_path / "moved")  # loading must not need the directory
        restored = load_checkpoint(tmp_path / "m.pt").tokenizer()
        (tmp_path / "moved").rename(tmp_path / "tok")
        assert restored.vocab_size == tokenizer.vocab_size
        assert restored.encode(text, "en") == tokenizer.encode(text, "en")
        assert restored.prompt_ids("de", "de", "asr", True) == [2, 8, 3, 8, 5]
    with pytest.raises(ValueError, match="tokenizer vocab_size"):
        save_checkpoint(tmp_path / "m.pt", _trained_a_little(vocab=32), tokenizer=tokenizer)


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    not_ckpt = tmp_path / "weights.pt"
    torch.save({"some": torch.zeros(2)}, not_ckpt)
    with pytest.raises(ValueError, match="not a padless checkpoint"):
        load_checkpoint(not_ckpt)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"garbage\.pt: not a readable padless checkpoint"):
        get_config(garbage)
    with pytest.raises(ValueError, match="not a tokenizer directory"):
        save_checkpoint(tmp_path / "m.pt", _trained_a_little(), tokenizer=tmp_path)
