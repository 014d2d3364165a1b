"""Per-step metrics: RUN/metrics.jsonl (every rank), TensorBoard and a progress bar (rank 0).

Each step adds one record: host numbers (bucket, sizes, padding, times) and a few device
scalars (loss, grad norm, the skipped-step flag). The device scalars are stacked and copied to
the host once per ``logging.interval`` steps in `flush`: on GPU that copy is the only host sync
of the training loop. One line per step per rank::

    {"step": 12, "rank": 0, "loss": 5.1, "lr": 1.2e-4, "bucket": 7, "batch_size": 18,
     "audio_s": 92.3, "audio_padding": 0.04, "token_padding": 0.21, "tokens": 812,
     "step_time_s": 0.41, "data_wait_s": 0.01, "audio_s_per_s": 225.1, "peak_mem_mb": 840.0,
     "grad_norm": 3.2, "bad_step": false, "skipped": 0, "epoch": 0, "time_s": 12.8}

``time_s`` is wall time since the run (or its resumption) started; ``bad_step`` marks a
non-finite loss or gradient whose update was skipped (its non-finite values are written as
null); ``skipped`` counts examples dropped for unreadable audio in this step (a micro-batch
whose examples were all unreadable adds nothing to the loss or the sizes).
"""

from __future__ import annotations

import json
import math
import os
import resource
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from padless.data.dataset import SpeechBatch

#: Keys of the per-step record that start as device tensors.
DEVICE_KEYS = ("loss", "grad_norm", "bad_step", "ctc_dropped")


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def batch_shape_stats(batches: Sequence[SpeechBatch], sample_rate: int) -> dict[str, Any]:
    """Sizes and padding of a step's micro-batches, from their host-side lengths (no sync)."""
    size = audio = audio_cells = tokens = token_cells = 0
    for b in batches:
        rows = len(b)
        size += rows
        audio += int(b.audio_lens.sum())
        audio_cells += rows * b.audio.shape[1]
        tokens += int(b.token_lens.sum())
        token_cells += rows * b.tokens.shape[1]
    return {
        "batch_size": size,
        "audio_s": audio / sample_rate,
        "audio_padding": 1.0 - audio / max(audio_cells, 1),
        "token_padding": 1.0 - tokens / max(token_cells, 1),
        "tokens": tokens,
    }


def peak_memory_mb(device: torch.device) -> float:
    """Peak allocated device memory (CUDA; a host query, no sync), else the peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def append_lines(path: Path, lines: Sequence[dict[str, Any]]) -> None:
    """Append JSON lines with one ``write`` on an O_APPEND descriptor, so ranks appending to
    the same file never interleave within a line."""
    if not lines:
        return
    data = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def truncate_after(path: Path, step: int, block: int = 1 << 16) -> None:
    """Drop the lines past ``step`` (a resumed run logs those steps again).

    Reads backwards from the end, so resuming costs the lines written since the checkpoint,
    not the whole log: every line up to a checkpoint's step precedes every later one (each
    rank flushes before the checkpoint's barrier)."""
    if not path.exists():
        return
    with open(path, "rb+") as f:
        pos = end = f.seek(0, os.SEEK_END)
        carry = b""  # the cut-off start of a line, completed by the next (earlier) block
        while pos > 0:
            start = max(pos - block, 0)
            f.seek(start)
            chunk = f.read(pos - start) + carry  # bytes start .. end of the carried line
            pos = start
            lines = chunk.split(b"\n")
            carry = lines.pop(0) if pos > 0 else b""
            line_end = start + len(chunk)  # one past the last byte of lines[-1]
            for line in reversed(lines):
                if line and json.loads(line)["step"] <= step:
                    f.truncate(min(line_end + 1, end))  # keep its newline
                    return
                line_end -= len(line) + 1
        f.truncate(0)


@dataclass
class MetricsLog:
    """Buffers step records and writes them at `flush` (see the module docstring)."""

    path: Path
    rank: int
    tensorboard_dir: Path | None = None
    progress_total: int | None = None  # rank 0: show a progress bar up to this step
    pending: list[dict[str, Any]] = field(default_factory=list)
    _writer: Any = None
    _progress: Any = None
    _task: Any = None

    def __post_init__(self) -> None:
        if self.tensorboard_dir is not None and self.rank == 0:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # the optional tensorboard extra is not installed
                self._writer = None
            else:
                self._writer = SummaryWriter(str(self.tensorboard_dir))
        if self.progress_total is not None and self.rank == 0:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("{task.fields[speed]} audio s/s"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self._task = self._progress.add_task(
                "train", total=self.progress_total, loss="-", speed="-"
            )
            self._progress.start()

    def record(self, values: dict[str, Any]) -> None:
        self.pending.append(values)

    def flush(self) -> list[dict[str, Any]]:
        """Copy the buffered device scalars to the host (one sync), write the lines and
        return them."""
        if not self.pending:
            return []
        records, self.pending = self.pending, []
        stacked = torch.stack(
            [torch.stack([r[k].float() for k in DEVICE_KEYS]) for r in records]
        ).tolist()  # host sync (on GPU): the only one of the loop
        for record, host in zip(records, stacked, strict=True):
            loss, grad_norm, bad, ctc_dropped = host
            # Strict JSON has no NaN/inf: a non-finite value is written as null.
            record.update(
                loss=_finite(loss),
                grad_norm=_finite(grad_norm),
                bad_step=bool(bad),
                ctc_dropped=int(ctc_dropped),
            )
            record["audio_s_per_s"] = record["audio_s"] / max(record["step_time_s"], 1e-9)
        append_lines(self.path, records)
        last = records[-1]
        if self._writer is not None:
            for r in records:
                for key in ("loss", "lr", "audio_s_per_s", "audio_padding", "token_padding"):
                    if r[key] is not None:
                        self._writer.add_scalar(f"train/{key}", r[key], r["step"])
        if self._progress is not None:
            speed = sum(r["audio_s"] for r in records) / max(
                sum(r["step_time_s"] for r in records), 1e-9
            )
            self._progress.update(
                self._task,
                completed=last["step"],
                loss="-" if last["loss"] is None else f"{last['loss']:.3f}",
                speed=f"{speed:.0f}",
            )
        return records

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self._writer is not None:
            self._writer.add_scalar(tag, value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._progress is not None:
            self._progress.stop()
