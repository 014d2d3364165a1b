"""`padless tokenizer train` and `padless tokenizer info` end to end on a generated manifest."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
from typer.testing import CliRunner

from padless.cli import app
from padless.data.tokenizer import CanaryTokenizer


def test_train_then_info(tmp_path: Path) -> None:
    rng = random.Random(0)
    words = {"en": "one two three four five six", "fr": "un deux trois quatre cinq six"}
    rows = [
        {
            "audio_filepath": f"{lang}{i}.wav",
            "duration": 2.0,
            "text": " ".join(rng.choices(w.split(), k=6)),
            "source_lang": lang,
            "target_lang": lang,
            "taskname": "asr",
        }
        for lang, w in words.items()
        for i in range(50)
    ]
    rows.append(
        {"audio_filepath": "x.wav", "duration": 2.0, "source_lang": "en"}
    )  # no text: line 101
    manifest = tmp_path / "train.jsonl"
    manifest.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    runner = CliRunner()

    out = tmp_path / "tok"
    args = ["tokenizer", "train", str(manifest), "--out", str(out), "--vocab-per-lang", "30"]
    failed = runner.invoke(app, args)
    assert failed.exit_code == 2
    assert failed.output.splitlines()[-1] == f"error: {manifest}:101: missing text"

    result = runner.invoke(app, [*args, "--on-error", "skip"])
    assert result.exit_code == 0, result.output
    assert "skipped 1 malformed records (1 missing text)" in result.output
    assert "vocab_size 70" in result.output  # 8 specials + 2 languages + 2 x 30 pieces
    tok = CanaryTokenizer.load(out)
    assert tok.languages == ("en", "fr")
    assert tok.decode(tok.encode("trois quatre", "fr")) == "trois quatre"

    info = runner.invoke(app, ["tokenizer", "info", str(out)])
    assert info.exit_code == 0, info.output
    assert "     9  <|fr|>" in info.output
    assert "    40..69  fr pieces" in info.output


def test_train_one_language_counts_the_others(tmp_path: Path) -> None:
    rows = [
        {"id": f"{lang}{i}", "duration": 1.0, "text": text, "lang": lang}
        for lang, text in (("en", "one two three"), ("fr", "un deux trois"), ("de", "eins zwei"))
        for i in range(10)
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    args = ["tokenizer", "train", str(manifest), "--out", str(tmp_path / "tok")]
    result = CliRunner().invoke(app, [*args, "--vocab-per-lang", "12", "--languages", "fr"])
    assert result.exit_code == 0, result.output
    assert "skipped examples in languages not asked for: 10 de, 10 en" in result.output
    assert CanaryTokenizer.load(tmp_path / "tok").languages == ("fr",)
