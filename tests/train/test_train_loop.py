"""The training loop on a tiny synthesized corpus: one process and two (gloo) processes."""

from __future__ import annotations

import os
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
    run.mkdir()  # an earlier start that crashed before its first checkpoint left a log
    (run / "metrics.jsonl").write_text('{"step": 3, "rank": 0, "loss": 1.0}\n')
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
    # WER and BLEU from decoding the dev set (padless.eval), hypotheses kept beside the scores.
    assert all(d["wer_avg"] is not None and d["wer_avg"] >= 0 for d in dev)
    assert (run / "validation" / "step-00000024" / "hypotheses.jsonl").exists()
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
    # Validation in between (sharded dev loss and decoding) must not disturb anything either.
    extra = [
        f"train.max_steps={steps}",
        "data.num_workers=1",
        f"data.dev={corpus.dev}",
        "validation.every_steps=4",
    ]
    wait_all(launch(base_overrides(corpus, whole) + extra, whole))

    procs = launch(base_overrides(corpus, stopped) + extra, stopped)
    _wait_for_step(stopped / "metrics.jsonl", 3)
    # To rank 1's process group only, as torchrun signals a rank: its DataLoader worker gets it
    # too (and must not die first); rank 0 learns of it from the step's agreement.
    os.killpg(procs[1].pid, signal.SIGTERM)
    results = wait_all(procs)
    assert [code for code, _ in results] == [0, 0], results
    saved = sorted((stopped / "checkpoints").iterdir())
    assert len(saved) == 1
    stop_step = int(saved[0].stem.split("-")[1])
    assert 3 <= stop_step < steps, stop_step

    results = wait_all(launch(base_overrides(corpus, stopped) + extra, stopped, resume="auto"))
    assert [code for code, _ in results] == [0, 0], results
    assert_same_steps(whole, stopped, range(1, steps + 1))
    assert read_jsonl(whole / "validation.jsonl") == read_jsonl(stopped / "validation.jsonl")


def assert_same_steps(a_run: Path, b_run: Path, steps: range) -> None:
    """Per step and rank: the same examples, bucket and loss (bitwise: the floats are written
    with all their digits)."""
    for name in ("metrics.jsonl", "dump.jsonl"):
        a = by_step_rank(read_jsonl(a_run / name))
        b = by_step_rank(read_jsonl(b_run / name))
        keys = [(s, r) for s in steps for r in (0, 1)]
        assert [k for k in sorted(b) if k[0] in steps] == keys
        for key in keys:
            fields = ("ids", "bucket") if name == "dump.jsonl" else ("loss", "bucket", "lr")
            assert [a[key][f] for f in fields] == [b[key][f] for f in fields], (name, key)


def test_resume_at_an_epoch_end_from_another_runs_checkpoint(
    corpus: Corpus, tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    extra = [
        "train.max_steps=12",
        "sampler.infinite=false",  # epochs end, with the DataLoader prefetching across them
        "data.num_workers=1",
        "checkpoint.every_steps=1",
        "checkpoint.keep_last=100",
    ]
    results = wait_all(launch([*base_overrides(corpus, first), *extra], first))
    assert [code for code, _ in results] == [0, 0], results
    rows = read_jsonl(first / "metrics.jsonl")
    epoch_end = max(r["step"] for r in rows if r["epoch"] == 0)
    assert epoch_end < 12
    checkpoint = first / "checkpoints" / f"step-{epoch_end:08d}.pt"
    results = wait_all(
        launch([*base_overrides(corpus, second), *extra], second, resume=str(checkpoint))
    )
    assert [code for code, _ in results] == [0, 0], results
    assert_same_steps(first, second, range(epoch_end + 1, 13))


def test_max_time_stops_with_a_checkpoint_that_resumes(corpus: Corpus, tmp_path: Path) -> None:
    run = tmp_path / "run"
    overrides = [*base_overrides(corpus, run), "train.max_steps=6"]
    config = load_training_config(EMPTY_CONFIG, [*overrides, "train.max_time=0"])
    assert train(config, run).step == 0  # the time was up before the first step
    saved = load_checkpoint(run / "checkpoints" / "step-00000000.pt")
    assert saved.extra["train"]["reason"] == "max_time"
    assert train(load_training_config(EMPTY_CONFIG, overrides), run).step == 6
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == list(range(1, 7))
