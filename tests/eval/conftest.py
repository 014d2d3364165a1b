"""Evaluation fixtures: the corpus utterances and corpus-trained tokenizer of `helpers.speech`,
a random-weight tiny-preset model, and a realistic training-run metrics writer."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from padless.data.tokenizer import CanaryTokenizer
from padless.model import PRESETS, AEDModel


@pytest.fixture(scope="session")
def random_model(tokenizer: CanaryTokenizer) -> AEDModel:
    """``tiny-canary-1b-flash`` sized for the fixture tokenizer, random weights, eval mode."""
    torch.manual_seed(0)
    config = dataclasses.replace(PRESETS["tiny-canary-1b-flash"], vocab_size=tokenizer.vocab_size)
    return AEDModel(config).eval()


# A training run's metrics.jsonl, shaped like the training loop's: one line per step per rank,
# a 2D bucket plan (duration bin, token bin) with a per-bucket batch-size table, a loss that
# falls with noise, a warm-up then inverse-square-root learning rate. Each rank computes for a
# time that grows with its padded audio, then every rank waits for the slowest at the gradient
# all-reduce (so logged step times are close and the work differs). Validation lines and an
# unknown line kind are mixed in.
BUCKETS = [(d, t) for d in range(4) for t in range(2)]
BUCKET_SECONDS = [2.0, 5.0, 9.0, 15.0]  # longest utterance per duration bin
BATCH_TABLE = {(d, t): int(96 / BUCKET_SECONDS[d]) - 2 * t for d, t in BUCKETS}


def write_metrics(
    run_dir: Path,
    *,
    steps: int = 120,
    ranks: int = 2,
    seed: int = 0,
    speed: float = 1.0,  # >1: a faster run (less time per audio second)
    sync: bool = True,  # the same bucket on every rank at each step
    val_every: int = 40,
) -> Path:
    """Write ``run_dir/metrics.jsonl``; returns its path."""
    import numpy as np
    import orjson

    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for step in range(steps):
        shared = BUCKETS[rng.integers(len(BUCKETS))]
        lr = 3e-4 * min((step + 1) / 20, (20 / (step + 1)) ** 0.5)
        rows = []
        for rank in range(ranks):
            bucket = shared if sync else BUCKETS[rng.integers(len(BUCKETS))]
            size = BATCH_TABLE[bucket]
            longest = BUCKET_SECONDS[bucket[0]]
            audio_padding = float(rng.uniform(0.02, 0.12))
            audio_s = size * longest * (1 - audio_padding)
            data_wait = float(rng.exponential(0.004))
            compute = size * longest / (300 * speed) * float(rng.uniform(0.95, 1.1))
            rows.append(
                {
                    "step": step,
                    "rank": rank,
                    "loss": float(5.5 * np.exp(-step / (60 / speed)) + 1 + rng.normal(0, 0.1)),
                    "lr": lr,
                    "bucket": [int(b) for b in bucket],
                    "batch_size": int(size),
                    "audio_s": audio_s,
                    "audio_padding": audio_padding,
                    "token_padding": float(rng.uniform(0.1, 0.3)),
                    "data_wait_s": data_wait,
                    "tokens": int(audio_s * rng.uniform(8, 12)),
                    "peak_mem_mb": 900.0 + 40 * bucket[0] + rank,
                    "grad_norm": float(rng.uniform(0.5, 2)),  # a key the report does not know
                    "_busy": data_wait + compute,
                }
            )
        slowest = max(r.pop("_busy") for r in rows)
        for row in rows:
            row["step_time_s"] = slowest + float(rng.uniform(0, 0.002))  # all-reduce, then step
            row["audio_s_per_s"] = row["audio_s"] / row["step_time_s"]
        lines.extend(rows)
        if val_every and step % val_every == val_every - 1:
            wer = float(90 * np.exp(-step * speed / 80) + 5)
            lines.append({"kind": "val", "step": step, "wer_avg": wer, "bleu_avg": 60 - wer / 2})
    lines.insert(3, {"kind": "event", "message": "checkpoint saved"})
    path = run_dir / "metrics.jsonl"
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


@pytest.fixture
def metrics_run() -> Callable[..., Path]:
    """``metrics_run(run_dir, steps=120, ranks=2, seed=0, speed=1.0, sync=True, val_every=40)``
    writes a generated ``run_dir/metrics.jsonl`` and returns its path."""
    return write_metrics
