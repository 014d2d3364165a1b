"""The training loop on a tiny synthesized corpus: one process and two (gloo) processes."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from trainrun import (
    EMPTY_CONFIG,
    Corpus,
    base_overrides,
    by_step_rank,
    launch,
    read_jsonl,
    wait_all,
)

from padless.model import load_checkpoint
from padless.train.config import load_training_config
from padless.train.loop import train

METRIC_KEYS = {
    "step", "rank", "loss", "lr", "bucket", "batch_size", "audio_s", "audio_padding",
    "token_padding", "step_time_s", "data_wait_s", "audio_s_per_s", "tokens", "peak_mem_mb",
    "skipped",
}  # fmt: skip


def test_one_process_loss_falls_and_writes_the_run(corpus: Corpus, tmp_path: Path) -> None:
    run = tmp_path / "run"
    overrides = [
        *base_overrides(corpus, run),
        "train.max_steps=24",
        f"data.dev={corpus.dev}",
        "validation.every_steps=12",
        "checkpoint.every_steps=12",
        "checkpoint.keep_last=1",
        "data.num_workers=1",  # the audio is read in a DataLoader worker
    ]
    config = load_training_config(EMPTY_CONFIG, overrides)
    progress = train(config, run)
    assert progress.step == 24
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 25))
    assert set(rows[0]) >= METRIC_KEYS
    first = sum(r["loss"] for r in rows[:4]) / 4
    last = sum(r["loss"] for r in rows[-4:]) / 4
    assert last < first - 0.5, (first, last)
    assert all(0 <= r["audio_padding"] < 1 and r["batch_size"] >= 1 for r in rows)
    # The resolved config loads back to the same config.
    assert load_training_config(run / "config.yaml") == config
    # keep_last=1 leaves the final checkpoint; it is a model checkpoint like any other.
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-00000024.pt"]
    loaded = load_checkpoint(run / "checkpoints" / "step-00000024.pt")
    assert loaded.extra["train"]["step"] == 24
    assert loaded.tokenizer().vocab_size == loaded.config.vocab_size
    dev = read_jsonl(run / "validation.jsonl")
    assert [d["step"] for d in dev] == [12, 24] and dev[1]["dev_loss"] < dev[0]["dev_loss"]
    assert (run / "best.pt").exists()


def test_two_ranks_agree_on_steps_and_buckets(corpus: Corpus, tmp_path: Path) -> None:
    run = tmp_path / "run"
    # A finite sampler: 12 steps cross several epoch ends, where unbalanced ranks would hang.
    overrides = [*base_overrides(corpus, run), "train.max_steps=12", "sampler.infinite=false"]
    results = wait_all(launch(overrides, run))
    assert [code for code, _ in results] == [0, 0], results
    rows = by_step_rank(read_jsonl(run / "metrics.jsonl"))
    steps = {rank: sorted(s for s, r in rows if r == rank) for rank in (0, 1)}
    assert steps[0] == steps[1] == list(range(1, 13))
    assert max(rows[s, 0]["epoch"] for s in steps[0]) >= 2  # at least two epoch ends
    same = sum(rows[s, 0]["bucket"] == rows[s, 1]["bucket"] for s in steps[0])
    assert same >= 0.95 * 12
    dump = read_jsonl(run / "dump.jsonl")
    ids = {(d["step"], d["rank"]): d["ids"] for d in dump}
    assert len(ids) == 24
    assert not set(ids[1, 0]) & set(ids[1, 1])  # the ranks read different data


def _wait_for_step(path: Path, step: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and any(r["step"] >= step for r in read_jsonl(path)):
            return
        time.sleep(0.05)
    raise AssertionError(f"no step {step} in {path} after {timeout} s")


def test_resume_after_sigterm_repeats_the_uninterrupted_run_exactly(
    corpus: Corpus, tmp_path: Path
) -> None:
    steps = 10
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    extra = [f"train.max_steps={steps}", "data.num_workers=1"]
    wait_all(launch(base_overrides(corpus, whole) + extra, whole))

    procs = launch(base_overrides(corpus, stopped) + extra, stopped)
    _wait_for_step(stopped / "metrics.jsonl", 3)
    procs[1].send_signal(signal.SIGTERM)  # one rank only: the ranks agree to stop together
    results = wait_all(procs)
    assert [code for code, _ in results] == [0, 0], results
    saved = sorted((stopped / "checkpoints").iterdir())
    assert len(saved) == 1
    stop_step = int(saved[0].stem.split("-")[1])
    assert 3 <= stop_step < steps, stop_step

    results = wait_all(launch(base_overrides(corpus, stopped) + extra, stopped, resume="auto"))
    assert [code for code, _ in results] == [0, 0], results
    for name in ("metrics.jsonl", "dump.jsonl"):
        a = by_step_rank(read_jsonl(whole / name))
        b = by_step_rank(read_jsonl(stopped / name))
        assert sorted(a) == sorted(b) == [(s, r) for s in range(1, steps + 1) for r in (0, 1)]
        for key in a:
            if name == "dump.jsonl":
                assert a[key] == b[key], key
            else:  # bitwise: the floats are written with all their digits
                assert (a[key]["loss"], a[key]["bucket"]) == (b[key]["loss"], b[key]["bucket"]), key
