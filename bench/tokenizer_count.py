"""Token counting throughput: `CanaryTokenizer.num_tokens` one example at a time vs the batched
`num_tokens_batch`, on the real shared transcripts (what the sampling engine does for 100k-1M
examples before bucketing).

    python bench/tokenizer_count.py --real-dir ../shared/data/real --repeat-to 1000000 --threads 1,2

Trains a tokenizer (1024 pieces per language) on the real transcripts (en: AMI + LibriSpeech,
fr: TCOF, id: Common Voice), then times each counting variant side by side on fresh copies of
the same examples (so no count is cached), best of ``--rounds``. Writes
``bench/results/<date>-tokenizer-count.md``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import orjson
import typer

from padless.data.example import Example
from padless.data.tokenizer import CanaryTokenizer, TokenizerTrainConfig, train_tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import RESULTS, command, environment, today, write_record  # bench/record.py

FILES = (
    "ami_meetings_segments.en.jsonl",
    "librispeech_clean_dev_test.en.jsonl",
    "tcof_spontaneous_dev_test.fr.jsonl",
    "commonvoice_id_train_dev_test.id.jsonl",
)


def load_real(real_dir: Path) -> list[Example]:
    """The real rows with text, as Examples."""
    examples: list[Example] = []
    for name in FILES:
        for line in (real_dir / name).read_bytes().splitlines():
            row = orjson.loads(line)
            if row["text"]:
                lang = row["lang"]
                examples.append(
                    Example(row["id"], row["duration"], None, row["text"], lang, lang, "asr", True)
                )
    return examples


def fresh(examples: list[Example], n: int) -> list[Example]:
    """``n`` uncounted copies, cycling through ``examples``."""
    return [
        Example(e.id, e.duration, None, e.text, e.source_lang, e.target_lang, e.task, e.pnc)
        for e in (examples[i % len(examples)] for i in range(n))
    ]


def best_of(
    rounds: int, make: Callable[[], list[Example]], run: Callable[[list[Example]], object]
) -> float:
    times = []
    for _ in range(rounds):
        batch = make()
        start = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - start)
    return min(times)


def main(
    real_dir: Annotated[Path, typer.Option(help="The shared real metadata folder.")],
    repeat_to: Annotated[
        int, typer.Option(help="Also time the batch path on this many examples.")
    ] = 1_000_000,
    threads: Annotated[
        str, typer.Option(help="Comma-separated thread counts of the batched variant.")
    ] = "1,2",
    rounds: Annotated[int, typer.Option(help="Timed rounds per variant (best is kept).")] = 5,
    out_dir: Annotated[Path, typer.Option(help="Where the dated record goes.")] = RESULTS,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        examples = load_real(real_dir)
        config = TokenizerTrainConfig(vocab_per_lang=1024)
        start = time.perf_counter()
        result = train_tokenizer([str(real_dir / name) for name in FILES], work / "tok", config)
        train_s = time.perf_counter() - start
    tok: CanaryTokenizer = result.tokenizer
    n = len(examples)
    typer.echo(f"{n} examples; trained {tok} in {train_s:.1f} s", err=True)

    def raw_loop(batch: list[Example]) -> None:
        # Lower bound of one call per example: SentencePiece alone, no prompt or caching.
        sps = {lang: tok._sp[lang] for lang in tok.languages}
        for e in batch:
            len(sps[str(e.target_lang)].encode(str(e.text)))

    def batched(threads: int) -> Callable[[list[Example]], object]:
        return lambda b: tok.num_tokens_batch(b, num_threads=threads)

    variants: dict[str, Callable[[list[Example]], object]] = {
        "num_tokens, one call per example": lambda b: [tok.num_tokens(e) for e in b],
    }
    for k in (int(t) for t in threads.split(",")):
        variants[f"num_tokens_batch, {k} thread{'s' if k > 1 else ''}"] = batched(k)
    variants["bare SentencePiece encode, one call per text (no prompt, no cache)"] = raw_loop
    # Every variant is checked against the one-at-a-time counts before it is timed.
    reference = [tok.num_tokens(e) for e in fresh(examples, n)]
    for name, run in variants.items():
        check = fresh(examples, n)
        run(check)
        if run is not raw_loop:
            assert [e.num_tokens for e in check] == reference, name
    rows: list[tuple[str, int, float]] = []
    sizes = [n] + ([repeat_to] if repeat_to > n else [])
    for size in sizes:
        # Rounds interleave the variants so load from other processes hits them alike.
        best = {name: float("inf") for name in variants}
        for _ in range(rounds if size == n else 2):
            for name, run in variants.items():
                best[name] = min(best[name], best_of(1, lambda s=size: fresh(examples, s), run))
        for name, seconds in best.items():
            rows.append((name, size, seconds))
            typer.echo(f"{name} [{size:,}]: {size / seconds:,.0f} examples/s", err=True)

    base = {size: size / sec for name, size, sec in rows if name.startswith("num_tokens,")}
    used = ", ".join(f"{lang}: {k:,}" for lang, k in result.sentences_used.items())
    lines = [
        f"# Token counting throughput ({today()})",
        "",
        f"Command: `{command()}`",
        "",
        f"Tokenizer: {tok!r}, trained on {n:,} real transcripts ({used}) in {train_s:.1f} s "
        "(TokenizerTrainConfig(vocab_per_lang=1024), 2 training threads).",
        f"Timing: best of {rounds} interleaved rounds on uncounted copies of the examples "
        f"(rows repeated to {repeat_to:,}: best of 2).",
        "",
        "| variant | examples | seconds | examples/s | vs one call per example |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {name} | {count:,} | {sec:.3f} | {count / sec:,.0f} "
            f"| {count / sec / base[count]:.2f}x |"
            for name, count, sec in rows
        ),
        "",
        environment("sentencepiece", "torch", "numpy"),
    ]
    write_record("tokenizer-count", "\n".join(lines), out_dir)


if __name__ == "__main__":
    typer.run(main)
