"""The corpus writer end to end: a small synthesized corpus, read back through the NeMo reader
and the shards, and `padless demo` on it."""

from __future__ import annotations

import dataclasses
import fcntl
import os
from pathlib import Path

import numpy as np
import orjson
import pytest
import soundfile as sf
from typer.testing import CliRunner

from padless.cli import app
from padless.data.audio import load_pcm
from padless.data.corpus.config import CorpusConfig
from padless.data.corpus.writer import (
    CORPUS_JSON,
    direction,
    is_complete,
    manifest_paths,
    synthesize_corpus,
)
from padless.data.example import FileAudio, ShardAudio
from padless.data.stream import read_manifest

SMALL = CorpusConfig(hours=0.1, seed=0)  # ~50 utterances, a few seconds on 2 cores


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SMALL, synthesized once per test session, shared by pytest-xdist workers (their temp
    folders sit in the session's folder; a lock lets the first one build it)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    out = root / "shared-corpus"
    with open(root / "shared-corpus.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_complete(out, SMALL):
            synthesize_corpus(SMALL, out, workers=2, progress=False)
    return out


def _records(out: Path) -> list[dict]:
    return [
        orjson.loads(line)
        for path in manifest_paths(out).values()
        for line in path.read_bytes().splitlines()
    ]


def test_corpus_layout_languages_and_directions(corpus: Path):
    records = _records(corpus)
    total = sum(r["duration"] for r in records)
    assert SMALL.hours * 3600 <= total < SMALL.hours * 3600 + SMALL.max_duration
    assert {r["source_lang"] for r in records} == {"de", "en", "es", "fr"}
    directions = {direction(r["source_lang"], r["target_lang"], r["taskname"]) for r in records}
    assert directions == {
        *(f"{x} asr" for x in ("de", "en", "es", "fr")),
        *(f"{x}->en ast" for x in ("de", "es", "fr")),
        *(f"en->{x} ast" for x in ("de", "es", "fr")),
    }
    assert {r["pnc"] for r in records} == {"yes", "no"}
    assert all(0.2 < r["duration"] <= SMALL.max_duration for r in records)
    assert len({r["id"] for r in records}) == len(records)
    meta = orjson.loads((corpus / CORPUS_JSON).read_bytes())
    assert meta["complete"] and meta["utterances"] == len(records)
    assert is_complete(corpus, SMALL)
    assert not is_complete(corpus, dataclasses.replace(SMALL, seed=1))


def test_flac_files_match_the_manifest(corpus: Path):
    for record in _records(corpus):
        audio, rate = sf.read(corpus / record["audio_filepath"], dtype="int16")
        info = sf.info(corpus / record["audio_filepath"])
        assert (info.format, info.subtype, info.channels, rate) == ("FLAC", "PCM_16", 1, 16000)
        assert len(audio) / 16000 == record["duration"]
        assert np.abs(audio).max() > 1000


def test_manifests_read_by_the_nemo_reader_and_shards_hold_the_same_examples(corpus: Path):
    for split, path in manifest_paths(corpus).items():
        from_manifest = list(read_manifest(str(path)))
        from_shards = list(read_manifest(str(corpus / "shards" / split)))
        assert len(from_manifest) == len(from_shards) > 0
        for a, b in zip(from_manifest, from_shards, strict=True):
            assert isinstance(a.audio, FileAudio) and isinstance(b.audio, ShardAudio)
            assert Path(a.audio.path).is_file()
            fields = ("id", "duration", "text", "source_lang", "target_lang", "task", "pnc")
            assert all(getattr(a, f) == getattr(b, f) for f in fields)
            assert a.extras == b.extras and a.extras is not None and "voice" in a.extras
            assert a.task == ("asr" if a.source_lang == a.target_lang else "ast")
        pcm_file, _ = load_pcm(from_manifest[0], "int16")
        pcm_shard, _ = load_pcm(from_shards[0], "int16")
        assert np.array_equal(pcm_file, pcm_shard)


def test_same_seed_same_bytes_whatever_the_workers_and_length(corpus: Path, tmp_path: Path):
    # One worker and a tenth of the hours against the fixture (two workers): the shorter corpus
    # is byte for byte the start of the longer one.
    short = synthesize_corpus(
        dataclasses.replace(SMALL, hours=SMALL.hours / 10), tmp_path, workers=1, progress=False
    )
    audio = sorted(p.relative_to(tmp_path) for p in (tmp_path / "audio").rglob("*.flac"))
    assert len(audio) == short.utterances > 0
    for rel in audio:
        assert (tmp_path / rel).read_bytes() == (corpus / rel).read_bytes(), rel
    for path in manifest_paths(tmp_path).values():
        assert (corpus / path.name).read_bytes().startswith(path.read_bytes())


def test_rewrite_replaces_only_our_entries_and_refuses_foreign_folders(tmp_path: Path):
    config = CorpusConfig(hours=0.003, seed=2)
    out = tmp_path / "c"
    args = ["corpus", "synth", "--out", str(out), "--hours", "0.003", "--seed", "2"]
    result = CliRunner().invoke(app, [*args, "--workers", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "x real time" in result.output and is_complete(out, config)
    (out / "notes.txt").write_text("mine")
    stale = out / "audio" / "9999" / "stale.flac"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x")
    synthesize_corpus(dataclasses.replace(config, seed=3), out, workers=1, progress=False)
    assert not stale.exists() and (out / "notes.txt").read_text() == "mine"
    assert is_complete(out, dataclasses.replace(config, seed=3))

    foreign = tmp_path / "foreign"
    (foreign / "audio").mkdir(parents=True)
    result = CliRunner().invoke(app, ["corpus", "synth", "--out", str(foreign), "--hours", "0.01"])
    assert result.exit_code == 2 and "not a padless corpus" in result.output
    assert list(foreign.iterdir()) == [foreign / "audio"]
