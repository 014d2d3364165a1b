"""Manifest statistics: exact numbers on hand-made manifests, the tokenizer path, the plot, the
command line, and the shared real metadata."""

from __future__ import annotations

import random
from pathlib import Path

import matplotlib.image
import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from padless.cli import app
from padless.data.corpus.phrases import LANGUAGES, SENTENCES
from padless.data.stats import StatsConfig, manifest_stats, plot_stats
from padless.data.stream import read_manifest
from padless.data.tokenizer import TokenizerTrainConfig, train_tokenizer

LINES = [
    {"id": "a", "duration": 1.0, "text": "a b", "source_lang": "en", "num_tokens": 10},
    {"id": "b", "duration": 2.0, "text": "c d e", "source_lang": "en", "num_tokens": 12},
    {"id": "c", "duration": 4.0, "text": "f", "source_lang": "en", "num_tokens": 16},
    {
        "id": "d",
        "duration": 3.0,
        "text": "hello there",
        "source_lang": "de",
        "target_lang": "en",
        "taskname": "ast",
        "num_tokens": 9,
    },
    {"id": "e", "duration": 5.0, "lang": "fr"},  # no text: metadata only
]


def _write(path: Path, lines: list[dict]) -> str:
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return str(path)


def _read(*paths: str):
    return read_manifest(list(paths), require_text=False)


def test_exact_numbers_on_a_hand_made_manifest(tmp_path: Path):
    path = _write(tmp_path / "m.jsonl", LINES)
    stats = manifest_stats(_read(path), [path])

    overall = stats.overall
    assert (overall.count, overall.hours) == (5, 15.0 / 3600)
    # durations 1, 2, 3, 4, 5 -> linear-interpolated percentiles
    assert overall.duration.percentiles == pytest.approx(
        {5.0: 1.2, 50.0: 3.0, 95.0: 4.8, 99.0: 4.96}
    )
    assert (overall.duration.min, overall.duration.mean, overall.duration.max) == (1.0, 3.0, 5.0)
    # tokens/s of the four examples with text: 10, 6, 4, 3
    assert stats.rate_unit == "tokens/s" and stats.rate_source == "the manifests' num_tokens"
    assert overall.rate is not None
    assert (overall.rate.min, overall.rate.max, overall.rate.mean) == (3.0, 10.0, 5.75)
    assert overall.rate.percentiles[50.0] == 5.0
    assert overall.without_rate == 1
    assert stats.notes == ("1 examples without text: no output rate",)

    groups = {g.name: g for g in stats.groups}
    assert list(groups) == ["de->en ast", "en asr", "fr asr"]
    assert groups["en asr"].count == 3 and groups["en asr"].hours == 7.0 / 3600
    assert groups["en asr"].duration.percentiles[50.0] == 2.0
    assert groups["en asr"].rate is not None and groups["en asr"].rate.percentiles[50.0] == 6.0
    assert groups["de->en ast"].rate is not None and groups["de->en ast"].rate.max == 3.0
    assert groups["fr asr"].rate is None and groups["fr asr"].without_rate == 1

    report = stats.to_json()
    assert report["overall"]["duration"]["p50"] == 3.0
    assert [g["name"] for g in report["groups"]] == list(groups)
    orjson.dumps(report)  # JSON-ready


def test_characters_per_second_without_token_counts(tmp_path: Path):
    lines = [{k: v for k, v in line.items() if k != "num_tokens"} for line in LINES]
    path = _write(tmp_path / "m.jsonl", lines)
    stats = manifest_stats(_read(path), [path], config=StatsConfig(percentiles=(50.0,)))
    assert stats.rate_unit == "chars/s" and "no tokenizer" in stats.rate_source
    # chars/s: 3/1, 5/2, 1/4, 11/3; words/s: 2/1, 3/2, 1/4, 2/3
    assert stats.overall.rate is not None
    assert stats.overall.rate.percentiles == {50.0: pytest.approx((2.5 + 3.0) / 2)}
    words = stats.overall.words_per_second
    assert words is not None and words.max == 2.0 and words.min == 0.25


def _sentences(lang: str, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(SENTENCES)(rng)[lang] for _ in range(n)]


def test_tokens_come_from_the_tokenizer(tmp_path: Path):
    train = [
        {"id": f"{lang}{i}", "duration": 1.0, "text": text, "source_lang": lang}
        for lang in LANGUAGES
        for i, text in enumerate(_sentences(lang, 150, seed=1))
    ]
    train_path = _write(tmp_path / "train.jsonl", train)
    config = TokenizerTrainConfig(vocab_per_lang=96)
    tokenizer = train_tokenizer([train_path], tmp_path / "tok", config).tokenizer

    lines = [
        {"id": f"{lang}{i}", "duration": 0.5 + i, "text": text, "source_lang": lang}
        for lang in LANGUAGES
        for i, text in enumerate(_sentences(lang, 5, seed=2))
    ]
    lines.append({"id": "it0", "duration": 2.0, "text": "buongiorno", "source_lang": "it"})
    path = _write(tmp_path / "m.jsonl", lines)
    stats = manifest_stats(_read(path), [path], tokenizer)

    assert stats.rate_unit == "tokens/s" and stats.rate_source.startswith("tokenizer")
    expected = [
        (len(tokenizer.prompt_ids(ln["source_lang"], ln["source_lang"], "asr", True)) + 1
         + len(tokenizer.encode(ln["text"], ln["source_lang"]))) / ln["duration"]
        for ln in lines[:-1]
    ]  # fmt: skip
    assert stats.rates[:-1] == pytest.approx(expected)
    assert np.isnan(stats.rates[-1])
    assert stats.notes == ("1 examples in 'it', a language the tokenizer lacks: no tokens",)


def test_plot_is_written(tmp_path: Path):
    lines = [*LINES, {"id": "long", "duration": 55.0, "text": "x y", "lang": "en"}]
    path = _write(tmp_path / "m.jsonl", lines)
    stats = manifest_stats(_read(path), [path])
    png = plot_stats(stats, tmp_path / "plot.png")
    image = matplotlib.image.imread(png)[..., :3]  # (H, W, RGB) floats in [0, 1]
    assert image.shape == (624, 1680, 3)  # 14 x 5.2 inches at 120 dpi
    # The histogram (left panel) has coloured bars; text, axes and grid lines are grey, so the
    # spread across the colour channels of a pixel is zero wherever no bar (or legend) is drawn.
    left = image[:, : int(image.shape[1] * 0.42)]
    coloured = (left.max(axis=2) - left.min(axis=2)) > 0.2
    assert coloured.mean() > 0.01, "histogram panel without bars"


def test_command_line_json_and_plot(tmp_path: Path):
    path = _write(tmp_path / "m.jsonl", LINES)
    plot = tmp_path / "s.png"
    result = CliRunner().invoke(app, ["manifest", "stats", path, "--json", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["overall"]["count"] == 5 and report["rate_unit"] == "tokens/s"
    assert plot.stat().st_size > 0

    table = CliRunner().invoke(app, ["manifest", "stats", path])
    assert table.exit_code == 0 and "de->en ast" in table.output and "tokens/s" in table.output


def test_bad_line_names_file_and_line(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(orjson.dumps(LINES[0]) + b"\n{not json\n")
    result = CliRunner().invoke(app, ["manifest", "stats", str(path)])
    assert result.exit_code == 2
    assert f"error: {path}:2: bad JSON" in result.output
    skipped = CliRunner().invoke(app, ["manifest", "stats", str(path), "--on-error", "skip"])
    assert skipped.exit_code == 0 and "skipped 1" in skipped.output

    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    result = CliRunner().invoke(app, ["manifest", "stats", str(empty)])
    assert result.exit_code == 2 and f"error: no examples in {empty}" in result.output


def test_real_metadata(real_data_dir: Path):
    path = str(real_data_dir / "ami_meetings_segments.en.jsonl")
    stats = manifest_stats(_read(path), [path])
    # SOURCES.md: 83,482 rows, 100.69 h, median 1.85 s
    assert stats.overall.count == 83_482
    assert stats.overall.hours == pytest.approx(100.69, abs=0.01)
    assert stats.overall.duration.percentiles[50.0] == pytest.approx(1.85, abs=0.01)
    assert stats.rate_unit == "chars/s" and [g.name for g in stats.groups] == ["en asr"]
