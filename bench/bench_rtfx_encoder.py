"""Encoder-side costs behind two CPU choices: tiny subsampling channels and glibc's allocator.

    python bench/bench_rtfx_encoder.py --batch 16 --seconds 8 --repeats 5

For tiny-canary-1b with 176 (= d_model) vs 64 (the preset) subsampling channels, and glibc's
default allocator vs `padless.infer.cpu.keep_freed_memory()`: the seconds `AEDModel.encode`
takes (features + subsampling + Conformer layers, eval, one thread) on a ``--batch`` x
``--seconds`` batch of noise, and the subsampling's share. Each allocator setting runs in its
own fresh process (mallopt is process-wide), both processes run every variant, and the median
of ``--repeats`` is reported in process CPU time and wall time.
Writes ``bench/results/<date>-rtfx-encoder.md``.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import orjson
import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import RESULTS, command, environment, today, write_record  # bench/record.py

CHANNELS = (176, 64)


def worker(keep_freed: bool, batch: int, seconds: float, repeats: int) -> dict[str, list[float]]:
    """Runs inside a fresh process: {variant: [cpu_s, wall_s, subsampling_cpu_s]}."""
    if keep_freed:
        from padless.infer.cpu import keep_freed_memory

        assert keep_freed_memory()
    import torch

    from padless.model import PRESETS, AEDModel

    torch.set_num_threads(1)
    torch.manual_seed(0)
    samples = int(seconds * 16_000)
    audio = 0.1 * torch.randn(batch, samples)
    lens = torch.full((batch,), samples)
    out: dict[str, list[float]] = {}
    for channels in CHANNELS:
        base = PRESETS["tiny-canary-1b"]
        enc = dataclasses.replace(base.encoder, subsampling_channels=channels)
        model = AEDModel(dataclasses.replace(base, encoder=enc)).eval()
        feats, feat_lens = model.features(audio, lens)
        cpu, wall, sub = [], [], []
        with torch.inference_mode():
            model.encode(audio, lens)  # warm-up
            for _ in range(repeats):
                start, cpu_start = time.perf_counter(), time.process_time()
                model.encode(audio, lens)
                wall.append(time.perf_counter() - start)
                cpu.append(time.process_time() - cpu_start)
                cpu_start = time.process_time()
                model.encoder.subsampling(feats, feat_lens)
                sub.append(time.process_time() - cpu_start)
        out[str(channels)] = [statistics.median(x) for x in (cpu, wall, sub)]
    return out


def main(
    batch: Annotated[int, typer.Option(help="Utterances per batch.")] = 16,
    seconds: Annotated[float, typer.Option(help="Seconds per utterance.")] = 8.0,
    repeats: Annotated[int, typer.Option(help="Timed runs per variant (median).")] = 5,
    out_dir: Annotated[Path, typer.Option(help="Where the record goes.")] = RESULTS,
    as_worker: Annotated[str, typer.Option(hidden=True)] = "",
) -> None:
    if as_worker:
        result = worker(as_worker == "keep", batch, seconds, repeats)
        sys.stdout.write(orjson.dumps(result).decode())
        return
    load_before = os.getloadavg()
    runs = {}
    for mode in ("default", "keep"):
        cmd = [sys.executable, __file__, "--batch", str(batch), "--seconds", str(seconds)]
        cmd += ["--repeats", str(repeats), "--as-worker", mode]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        runs[mode] = orjson.loads(done.stdout)

    lines = [
        f"# Tiny encoder on CPU: subsampling channels x allocator ({today()})",
        "",
        f"Command: `{command()}`",
        "",
        f"`AEDModel.encode` of tiny-canary-1b (eval, 1 thread) on {batch} x {seconds:g} s of "
        f"noise; median of {repeats} runs after a warm-up. CPU = process CPU seconds.",
        "",
        "| subsampling channels | allocator | encode CPU s | encode wall s | subsampling CPU s |",
        "|---:|---|---:|---:|---:|",
    ]
    for channels in CHANNELS:
        for mode, label in (("default", "glibc default"), ("keep", "keep_freed_memory")):
            cpu, wall, sub = runs[mode][str(channels)]
            lines.append(f"| {channels} | {label} | {cpu:.3f} | {wall:.3f} | {sub:.3f} |")
    lines += ["", environment("torch", load_before=load_before)]
    write_record("rtfx-encoder", "\n".join(lines), out_dir)


if __name__ == "__main__":
    typer.run(main)
