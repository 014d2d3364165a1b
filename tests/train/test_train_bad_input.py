"""Bad input during training: a corrupt FLAC member in a shard (error and skip modes, two ranks)
and a model whose loss is never finite."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from trainrun import (
    EMPTY_CONFIG,
    Corpus,
    base_overrides,
    by_step_rank,
    launch,
    read_jsonl,
    wait_all,
)

from padless.model import load_checkpoint, save_checkpoint
from padless.train.config import load_training_config
from padless.train.loop import TrainingError, train


def corrupt_shards(corpus: Corpus, out: Path) -> str:
    """A copy of the training shards whose first FLAC member is garbage; returns its id."""
    shutil.copytree(corpus.train_shards, out)
    index = sorted(out.glob("*.index.jsonl"))[0]
    first = json.loads(index.read_text().splitlines()[0])
    tar = index.with_name(index.name.replace(".index.jsonl", ".tar"))
    with open(tar, "r+b") as f:
        f.seek(first["offset"])
        f.write(b"\x07not flac" * (first["size"] // 9))
    return str(first["id"])


def shard_run(corpus: Corpus, tmp_path: Path, mode: str) -> tuple[Path, list[str], str]:
    bad = corrupt_shards(corpus, tmp_path / "shards")
    run = tmp_path / "run"
    overrides = [
        *base_overrides(corpus, run),
        f"data.train={tmp_path / 'shards'}",
        "data.num_workers=1",  # the error crosses from a worker process
        f"train.on_bad_audio={mode}",
        "train.max_steps=8",  # two passes over each rank's data
    ]
    return run, overrides, bad


def test_corrupt_audio_stops_every_rank_naming_the_example(corpus: Corpus, tmp_path: Path) -> None:
    run, overrides, bad = shard_run(corpus, tmp_path, "error")
    results = wait_all(launch(overrides, run))
    for code, output in results:  # no hang, and the same message on both ranks
        assert code == 2, output
        assert "error: unreadable training audio" in output
        assert bad in output and "shard-000000.tar" in output


def test_corrupt_audio_is_skipped_and_counted(corpus: Corpus, tmp_path: Path) -> None:
    run, overrides, bad = shard_run(corpus, tmp_path, "skip")
    results = wait_all(launch(overrides, run))
    assert [code for code, _ in results] == [0, 0], results
    rows = by_step_rank(read_jsonl(run / "metrics.jsonl"))
    assert sorted(rows) == [(s, r) for s in range(1, 9) for r in (0, 1)]
    assert sum(r["skipped"] for r in rows.values()) >= 1  # once per pass over its rank's data
    dump = read_jsonl(run / "dump.jsonl")
    assert all(bad not in d["ids"] for d in dump)
    skipped_rank = next(r["rank"] for r in rows.values() if r["skipped"])
    assert any(bad in output for _, output in [results[skipped_rank]])  # logged by name


def test_non_finite_loss_skips_steps_then_stops(corpus: Corpus, tmp_path: Path) -> None:
    broken = load_checkpoint(corpus.model).model
    with torch.no_grad():
        broken.decoder.embedding.weight.fill_(float("nan"))
    save_checkpoint(tmp_path / "nan.pt", broken, tokenizer=corpus.tokenizer)
    run = tmp_path / "run"
    overrides = [
        *base_overrides(corpus, run),
        f"model.init={tmp_path / 'nan.pt'}",
        "train.max_bad_steps=3",
        "train.max_steps=10",
    ]
    with pytest.raises(TrainingError, match="3 steps in a row had a non-finite loss"):
        train(load_training_config(EMPTY_CONFIG, overrides), run)
    rows = read_jsonl(run / "metrics.jsonl")
    assert [(r["bad_step"], r["loss"]) for r in rows] == [(True, None)] * 3
