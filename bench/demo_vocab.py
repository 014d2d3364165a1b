"""Which tokenizer size suits the demo corpus: pieces per language vs tokens per utterance and
output rate, on the train split of a synthesized corpus.

    python bench/demo_vocab.py --corpus data/demo --sizes 64,128,256,512,1024

``--corpus`` is a folder written by `padless corpus synth` (or `make demo`). For each size, trains
the Canary tokenizer on train.jsonl and counts prompt + text + EOS tokens of every train example.
SentencePiece refuses sizes above what the text supports; the record shows its message. Writes
``bench/results/<date>-demo-vocab.md``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from padless.data.stream import read_manifest
from padless.data.tokenizer import TokenizerTrainConfig, train_tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import RESULTS, command, environment, today, write_record  # bench/record.py


def main(
    corpus: Annotated[Path, typer.Option(help="A corpus folder (train.jsonl inside).")],
    sizes: Annotated[str, typer.Option(help="Comma-separated pieces per language.")] = (
        "64,128,256,512,1024"
    ),
    out_dir: Annotated[Path, typer.Option(help="Where the record goes.")] = RESULTS,
) -> None:
    train = corpus / "train.jsonl"
    examples = list(read_manifest(str(train)))
    chars: Counter[str] = Counter()
    words: dict[str, set[str]] = {}
    for e in examples:
        lang = e.target_lang or "?"
        chars[lang] += len(e.text or "")
        words.setdefault(lang, set()).update((e.text or "").lower().split())
    hours = sum(e.duration for e in examples) / 3600
    lines = [
        f"# Demo tokenizer size ({today()})",
        "",
        f"Command: `{command()}`",
        "",
        f"Train split of {corpus}: {len(examples)} utterances, {hours:.3f} h. Text per target "
        "language: "
        + ", ".join(
            f"{lang} {chars[lang]:,} chars / {len(words[lang])} distinct words"
            for lang in sorted(chars)
        ),
        "",
        "| pieces per language | vocab size | train (s) | mean tokens / utterance | "
        "tokens/s p50 | tokens/s p95 |",
        "|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for size in (int(s) for s in sizes.split(",")):
        with tempfile.TemporaryDirectory() as work:
            start = time.perf_counter()
            try:
                config = TokenizerTrainConfig(vocab_per_lang=size)
                tokenizer = train_tokenizer([str(train)], work, config).tokenizer
            except (RuntimeError, ValueError) as err:
                lines.append(f"| {size} | - | - | refused: {str(err).splitlines()[0]} | | |")
                continue
            seconds = time.perf_counter() - start
        fresh = list(read_manifest(str(train)))
        tokens = np.array(tokenizer.num_tokens_batch(fresh), dtype=np.float64)
        rate = tokens / np.array([e.duration for e in fresh])
        p50, p95 = np.percentile(rate, [50, 95])
        lines.append(
            f"| {size} | {tokenizer.vocab_size} | {seconds:.2f} | {tokens.mean():.1f} "
            f"| {p50:.1f} | {p95:.1f} |"
        )
    lines += ["", environment("sentencepiece", "numpy")]
    write_record("demo-vocab", "\n".join(lines), out_dir)


if __name__ == "__main__":
    typer.run(main)
