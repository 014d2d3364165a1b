"""Speed of the embedded corpus: `padless corpus synth` end to end (x real time), and where one
process's time goes per utterance.

    python bench/bench_corpus.py --hours 0.6 --workers 2 --stages 200

1. End to end: `synthesize_corpus` of ``--hours`` with ``--workers`` processes (pool start-up,
   espeak-ng, resampling, FLAC, manifests and shards included), ``--rounds`` times; the issue's
   target is >= 50x real time on 2 cores.
2. Stages, side by side in this one process on the first ``--stages`` utterance plans:
   espeak-ng in-process (not reproducible, see espeak.py), espeak-ng in a forked child (what the
   corpus uses), soxr 22.05 -> 16 kHz, FLAC encoding. Each as x real time of the audio it makes.

Writes ``bench/results/<date>-corpus.md``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from padless.data.corpus.config import CorpusConfig
from padless.data.corpus.espeak import Espeak
from padless.data.corpus.plan import plan_utterance
from padless.data.corpus.synth import encode_flac
from padless.data.corpus.writer import CorpusSummary, synthesize_corpus

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import RESULTS, command, environment, today, write_record  # bench/record.py


def end_to_end(config: CorpusConfig, workers: int, rounds: int) -> list[CorpusSummary]:
    summaries = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="bench-corpus-") as out:
            summaries.append(synthesize_corpus(config, out, workers=workers, progress=False))
    return summaries


def stages(config: CorpusConfig, count: int) -> dict[str, tuple[float, float]]:
    """stage -> (seconds of work, seconds of audio it produced), one process."""
    import soxr

    engine = Espeak.instance()
    plans = [plan_utterance(config, i) for i in range(count)]
    args = [(p.texts()[p.source_lang], p.voice, p.rate, p.pitch) for p in plans]
    out: dict[str, tuple[float, float]] = {}

    start = time.perf_counter()
    forked = [engine.synthesize(*a, seed=p.noise_seed) for a, p in zip(args, plans, strict=True)]
    out["espeak-ng, forked child (used)"] = (time.perf_counter() - start, 0.0)
    start = time.perf_counter()
    in_process = [engine._speak(*a) for a in args]  # the unreproducible path, for comparison
    out["espeak-ng, in-process"] = (time.perf_counter() - start, 0.0)
    start = time.perf_counter()
    resampled = [soxr.resample(pcm, engine.sampling_rate, 16_000) for pcm in forked]
    out["soxr 22.05 -> 16 kHz"] = (time.perf_counter() - start, 0.0)
    start = time.perf_counter()
    for pcm in resampled:
        encode_flac(pcm)
    out["FLAC encode"] = (time.perf_counter() - start, 0.0)

    audio = sum(len(p) for p in resampled) / 16_000
    audio_in_process = sum(len(p) for p in in_process) / engine.sampling_rate
    return {
        name: (work, audio_in_process if "in-process" in name else audio)
        for name, (work, _) in out.items()
    }


def main(
    hours: Annotated[float, typer.Option(help="Corpus size for the end-to-end run.")] = 0.6,
    workers: Annotated[int, typer.Option(help="Synthesis processes.")] = 2,
    rounds: Annotated[int, typer.Option(help="End-to-end repetitions.")] = 2,
    stage_count: Annotated[int, typer.Option("--stages", help="Utterances for stages.")] = 200,
    out_dir: Annotated[Path, typer.Option(help="Where the record goes.")] = RESULTS,
) -> None:
    config = CorpusConfig(hours=hours)
    load = os.getloadavg()
    summaries = end_to_end(config, workers, rounds)
    parts = stages(config, stage_count)

    lines = [
        f"# Corpus synthesis speed ({today()})",
        "",
        f"Command: `{command()}`",
        "",
        f"Config: {config}",
        "",
        "## End to end (`synthesize_corpus`: pool, espeak-ng, soxr, FLAC, manifests, shards)",
        "",
        "| round | workers | utterances | audio (s) | wall (s) | shards (s) | x real time |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, s in enumerate(summaries, start=1):
        lines.append(
            f"| {i} | {s.workers} | {s.utterances} | {s.seconds:.1f} | {s.wall_seconds:.2f} "
            f"| {s.shard_seconds:.2f} | {s.speed:.0f} |"
        )
    lines += [
        "",
        f"## Stages, one process, first {stage_count} utterances of the same plan",
        "",
        "| stage | work (s) | audio (s) | x real time |",
        "|---|---:|---:|---:|",
    ]
    for name, (work, audio) in parts.items():
        lines.append(f"| {name} | {work:.3f} | {audio:.1f} | {audio / work:.0f} |")
    forked = parts["espeak-ng, forked child (used)"][0]
    direct = parts["espeak-ng, in-process"][0]
    lines += [
        "",
        f"Forked / in-process espeak-ng time: {forked / direct:.2f}x.",
        "",
        environment("espeakng-loader", "num2words", "soxr", "soundfile", "numpy", load_before=load),
    ]
    write_record("corpus", "\n".join(lines), out_dir)


if __name__ == "__main__":
    typer.run(main)
