"""Helpers of the training tests: the overrides of a small deterministic run and launching
``python -m padless.train`` in several processes the way torchrun would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[2] / "src"
#: The tests pass every setting as an override.
EMPTY_CONFIG = Path(__file__).with_name("empty.yaml")


@dataclass(frozen=True)
class Corpus:
    root: Path
    train: Path  # NeMo manifest
    train_shards: Path  # shard folder of the same examples
    dev: Path
    tokenizer: Path
    model: Path  # a small untrained model checkpoint (model.init)


def base_overrides(corpus: Corpus, run_dir: Path) -> list[str]:
    """A small deterministic CPU run on the corpus (no workers: each step is ~0.1 s)."""
    return [
        f"data.train={corpus.train}",
        f"data.tokenizer={corpus.tokenizer}",
        "data.estimate={num_buckets: 2, num_subbuckets: 2}",
        "data.num_workers=0",
        "sampler.infinite=true",
        "sampler.buffer_size=200",
        "sampler.start_fill=1.0",
        "sampler.ramp_steps=0",
        "batch={kind: duration, max_duration: 20.0}",
        f"model.init={corpus.model}",
        "optim.lr=3e-3",
        "schedule.warmup_steps=2",
        "train.device=cpu",
        "train.threads=1",
        "train.deterministic=true",
        "checkpoint.every_steps=0",
        "logging.interval=1",
        "logging.progress=false",
        "logging.tensorboard=false",
        f"debug.dump_batches={run_dir / 'dump.jsonl'}",
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(
    overrides: Sequence[str], run_dir: Path, world_size: int = 2, resume: str | None = None
) -> list[subprocess.Popen[str]]:
    """Start ``python -m padless.train`` once per rank with the variables torchrun would set."""
    port = free_port()
    procs = []
    for rank in range(world_size):
        env = dict(
            os.environ,
            PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(world_size),
            LOCAL_WORLD_SIZE=str(world_size),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            OMP_NUM_THREADS="1",
        )
        cmd = [sys.executable, "-m", "padless.train", str(EMPTY_CONFIG), *overrides]
        cmd += ["--run-dir", str(run_dir)]
        if resume is not None:
            cmd += ["--resume", resume]
        procs.append(
            subprocess.Popen(
                cmd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,  # a process group per rank, as torchrun starts them
            )
        )
    return procs


def wait_all(procs: Sequence[subprocess.Popen[str]], timeout: float = 120) -> list[tuple[int, str]]:
    out = []
    for p in procs:
        try:
            text, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        out.append((p.returncode, text))
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def by_step_rank(rows: list[dict[str, Any]]) -> dict[tuple[int, int], dict[str, Any]]:
    return {(r["step"], r["rank"]): r for r in rows}
