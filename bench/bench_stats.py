"""Speed of `padless manifest stats` on the shared real metadata and on a 1M-line manifest
bootstrapped from it, phase by phase.

    python bench/bench_stats.py --real-dir ../shared/data/real --lines 1000000

For each input: reading (the NeMo reader, as the command does), `manifest_stats` (characters per
second: no tokenizer), `manifest_stats` with a Canary tokenizer (1024 pieces per language,
trained here on the real transcripts; tokens = prompt + text + EOS), and `plot_stats`. The
bootstrapped manifest lives in a temporary folder (~150 MB for 1M lines). Writes
``bench/results/<date>-manifest-stats.md``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from padless.data.example import Example
from padless.data.stats import manifest_stats, plot_stats
from padless.data.stream import read_manifest
from padless.data.tokenizer import CanaryTokenizer, TokenizerTrainConfig, train_tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets as bench_datasets  # bench/datasets.py, importable after the path set-up
from record import RESULTS, command, environment, today, write_record  # bench/record.py


def phases(paths: list[str], tokenizer: CanaryTokenizer, plot: Path) -> dict[str, float]:
    """Seconds per phase; examples are read once and counted from fresh copies for the
    tokenizer (counts are cached in the examples)."""
    out: dict[str, float] = {}
    start = time.perf_counter()
    examples = list(read_manifest(paths, require_text=False))
    out["read (NeMo reader)"] = time.perf_counter() - start
    start = time.perf_counter()
    stats = manifest_stats(examples, paths)
    out["stats, chars/s"] = time.perf_counter() - start
    fresh = [
        Example(e.id, e.duration, None, e.text, e.source_lang, e.target_lang, e.task, e.pnc)
        for e in examples
    ]
    start = time.perf_counter()
    manifest_stats(fresh, paths, tokenizer)
    out["stats, tokens/s (tokenizer)"] = time.perf_counter() - start
    start = time.perf_counter()
    plot_stats(stats, plot)
    out["plot"] = time.perf_counter() - start
    out["examples"] = len(examples)
    return out


def main(
    real_dir: Annotated[Path, typer.Option(help="The shared real metadata folder.")] = Path(
        "../shared/data/real"
    ),
    lines: Annotated[int, typer.Option(help="Lines of the bootstrapped manifest.")] = 1_000_000,
    out_dir: Annotated[Path, typer.Option(help="Where the record goes.")] = RESULTS,
) -> None:
    real = sorted(str(p) for p in real_dir.glob("*.jsonl"))
    if not real:
        raise typer.BadParameter(f"no *.jsonl in {real_dir}", param_hint="--real-dir")
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-stats-") as work:
        work_dir = Path(work)
        start = time.perf_counter()
        config = TokenizerTrainConfig(vocab_per_lang=1024)
        transcribed = [p for p in real if "durations_only" not in p]
        tokenizer = train_tokenizer(transcribed, work_dir / "tok", config).tokenizer
        train_seconds = time.perf_counter() - start
        joined = work_dir / "real.jsonl"
        joined.write_bytes(b"".join(Path(p).read_bytes() for p in real))
        big = work_dir / "big.jsonl"
        bench_datasets.bootstrap_manifest(joined, big, lines, seed=0)
        results = {
            f"real metadata ({len(real)} files)": phases(real, tokenizer, work_dir / "a.png"),
            f"bootstrapped to {lines:,} lines": phases([str(big)], tokenizer, work_dir / "b.png"),
        }

    names = [n for n in next(iter(results.values())) if n != "examples"]
    table = [
        "| input | examples | " + " | ".join(f"{n} (s)" for n in names) + " | total (s) |",
        "|---|---:|" + "---:|" * (len(names) + 1),
    ]
    for name, r in results.items():
        total = sum(r[n] for n in names)
        cells = " | ".join(f"{r[n]:.2f}" for n in names)
        table.append(f"| {name} | {int(r['examples']):,} | {cells} | {total:.2f} |")
    record = [
        f"# manifest stats speed ({today()})",
        "",
        f"Command: `{command()}`",
        "",
        f"Tokenizer: {config.vocab_per_lang} pieces per language "
        f"({', '.join(tokenizer.languages)}), trained on the real transcripts in "
        f"{train_seconds:.1f} s (not in the table).",
        "",
        *table,
        "",
        "Throughput (examples/s, reading + chars/s statistics): "
        + ", ".join(
            f"{name}: {r['examples'] / (r[names[0]] + r[names[1]]):,.0f}"
            for name, r in results.items()
        ),
        "",
        environment("numpy", "orjson", "sentencepiece", "matplotlib", load_before=load),
    ]
    write_record("manifest-stats", "\n".join(record), out_dir)


if __name__ == "__main__":
    typer.run(main)
