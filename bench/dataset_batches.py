"""Where a SpeechDataset batch spends its time: audio decoding vs tokenization vs collation,
and DataLoader throughput with 0, 1 and 2 worker processes.

    python bench/dataset_batches.py --real-dir ../shared/data/real --files 256 --batch 16

Writes ``--files`` 16 kHz FLAC files (tone + noise, durations and English transcripts drawn from
the real AMI metadata, 0.5-20 s) to a temporary folder, trains a 1024-piece tokenizer on the
transcripts, groups examples of similar duration into batches of ``--batch`` (as a bucketing
sampler would), then times each stage side by side. Writes
``bench/results/<date>-dataset-batches.md``.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import orjson
import soundfile as sf
import torch
import typer
from torch.utils.data import DataLoader

from padless.data.audio import load_audio
from padless.data.dataset import SpeechDataset, collate
from padless.data.example import Example, FileAudio
from padless.data.tokenizer import TokenizerTrainConfig, train_tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import RESULTS, command, environment, today, write_record  # bench/record.py


def main(
    real_dir: Annotated[Path, typer.Option(help="The shared real metadata folder.")],
    files: Annotated[int, typer.Option(help="Audio files to generate.")] = 256,
    batch: Annotated[int, typer.Option(help="Examples per batch.")] = 16,
    rounds: Annotated[int, typer.Option(help="Timed passes per variant (best is kept).")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the row sample and the signals.")] = 0,
    out_dir: Annotated[Path, typer.Option(help="Where the dated record goes.")] = RESULTS,
) -> None:
    torch.set_num_threads(1)
    rows = [
        r
        for r in map(
            orjson.loads, (real_dir / "ami_meetings_segments.en.jsonl").read_bytes().splitlines()
        )
        if 0.5 <= r["duration"] <= 20.0
    ]
    rng = random.Random(seed)
    picked = rng.sample(rows, files)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = root / "train.jsonl"
        manifest.write_bytes(
            b"".join(
                orjson.dumps(
                    {"id": r["id"], "duration": r["duration"], "text": r["text"], "lang": "en"}
                )
                + b"\n"
                for r in rows[:20000]
            )
        )
        tok = train_tokenizer([str(manifest)], root / "tok", TokenizerTrainConfig()).tokenizer
        noise = np.random.default_rng(seed)
        examples = []
        for r in picked:
            n = round(r["duration"] * 16_000)
            t = np.arange(n) / 16_000
            wave = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * noise.standard_normal(n)
            path = root / f"{r['id']}.flac"
            sf.write(path, np.round(wave * 32767).astype(np.int16), 16_000, subtype="PCM_16")
            examples.append(
                Example(r["id"], n / 16_000, FileAudio(str(path)), r["text"], "en", "en")
            )
        examples.sort(key=lambda e: e.duration)
        batches = [examples[i : i + batch] for i in range(0, len(examples), batch)]
        audio_s = sum(e.duration for e in examples)
        dataset = SpeechDataset(tok)

        def stage_times() -> dict[str, float]:
            spent = {"audio decode (load_audio)": 0.0, "tokenize (encode_examples)": 0.0}
            spent["collate"] = 0.0
            for b in batches:
                t0 = time.perf_counter()
                wavs = [load_audio(e) for e in b]
                t1 = time.perf_counter()
                enc = tok.encode_examples(b, num_threads=1)
                t2 = time.perf_counter()
                collate(wavs, [s for s, _ in enc], [p for _, p in enc], [e.id for e in b], 0)
                t3 = time.perf_counter()
                spent["audio decode (load_audio)"] += t1 - t0
                spent["tokenize (encode_examples)"] += t2 - t1
                spent["collate"] += t3 - t2
            return spent

        best_stages: dict[str, float] = {}
        for _ in range(rounds):
            for k, v in stage_times().items():
                best_stages[k] = min(best_stages.get(k, float("inf")), v)

        # Workers persist across passes and the first pass is not timed, so worker start-up
        # (a fork, ~0.1-0.5 s) is left out: a training epoch pays it once.
        loaders = {
            w: DataLoader(
                dataset, batch_size=None, sampler=batches, num_workers=w, persistent_workers=w > 0
            )
            for w in (0, 1, 2)
        }
        for loader in loaders.values():
            for _b in loader:
                pass
        loader_s: dict[int, float] = {}
        for _ in range(rounds):
            for workers, loader in loaders.items():
                t0 = time.perf_counter()
                for _b in loader:
                    pass
                loader_s[workers] = min(
                    loader_s.get(workers, float("inf")), time.perf_counter() - t0
                )
        del loaders

    total = sum(best_stages.values())
    lines = [
        f"# SpeechDataset batch cost ({today()})",
        "",
        f"Command: `{command()}`",
        "",
        f"{files} FLAC files (16 kHz mono, {audio_s / 60:.1f} min of audio, durations and English "
        f"transcripts of AMI rows in 0.5-20 s), {len(batches)} batches of {batch} sorted by "
        f"duration; tokenizer {tok!r}. Best of {rounds} passes; torch threads 1; DataLoader "
        "workers persistent, first pass untimed.",
        "",
        "| stage | seconds per pass | share |",
        "|---|---:|---:|",
        *(f"| {k} | {v:.3f} | {v / total:.1%} |" for k, v in best_stages.items()),
        "",
        "| DataLoader (batch_size=None) | seconds per pass | audio s per s | batches/s |",
        "|---|---:|---:|---:|",
        *(
            f"| num_workers={w} | {s:.3f} | {audio_s / s:,.0f} | {len(batches) / s:,.1f} |"
            for w, s in loader_s.items()
        ),
        "",
        environment("torch", "numpy", "soundfile"),
    ]
    write_record("dataset-batches", "\n".join(lines), out_dir)


if __name__ == "__main__":
    typer.run(main)
