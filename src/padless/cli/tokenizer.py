"""`padless tokenizer train|info`: build and inspect the aggregate Canary tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from padless.cli.errors import at_least
from padless.data.errors import OnError
from padless.data.tokenizer import TokenizerTrainConfig

_DEFAULTS = TokenizerTrainConfig()


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Train and inspect the Canary tokenizer (one BPE model per language, one id space).",
        no_args_is_help=True,
    )
    group.command("train")(train)
    group.command("info")(info)
    app.add_typer(group, name="tokenizer")


def train(
    manifests: Annotated[
        list[str], typer.Argument(help="NeMo JSON-lines manifests (paths or fsspec URLs).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    vocab_per_lang: Annotated[
        int, typer.Option(help="SentencePiece pieces per language.")
    ] = _DEFAULTS.vocab_per_lang,
    languages: Annotated[
        str | None,
        typer.Option(help="Comma-separated languages to build (default: all found)."),
    ] = None,
    max_sentences_per_lang: Annotated[
        int, typer.Option(help="Cap on training sentences per language (reservoir sample).")
    ] = _DEFAULTS.max_sentences_per_lang,
    seed: Annotated[int, typer.Option(help="Seed of the sentence sample.")] = _DEFAULTS.seed,
    character_coverage: Annotated[
        float, typer.Option(help="Character coverage of each model.")
    ] = _DEFAULTS.character_coverage,
    byte_fallback: Annotated[
        bool, typer.Option(help="Add byte pieces so unseen characters round-trip.")
    ] = _DEFAULTS.byte_fallback,
    on_error: Annotated[
        OnError, typer.Option(help="Malformed manifest lines: raise, or skip and count.")
    ] = _DEFAULTS.on_error,
    num_threads: Annotated[
        int, typer.Option(help="SentencePiece training threads.")
    ] = _DEFAULTS.num_threads,
) -> None:
    """Train one SentencePiece BPE model per target language and save DIR/tokenizer.json."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from padless.data.tokenizer import train_tokenizer

    at_least(2, vocab_per_lang=vocab_per_lang, max_sentences_per_lang=max_sentences_per_lang)
    config = TokenizerTrainConfig(
        vocab_per_lang=vocab_per_lang,
        languages=tuple(s.strip() for s in languages.split(",") if s.strip())
        if languages
        else None,
        max_sentences_per_lang=max_sentences_per_lang,
        seed=seed,
        character_coverage=character_coverage,
        byte_fallback=byte_fallback,
        num_threads=num_threads,
        on_error=on_error,
    )
    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,} lines"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("reading manifests, then training", total=None)
        result = train_tokenizer(manifests, out, config, on_line=lambda: progress.advance(task))
    tok = result.tokenizer
    for lang in tok.languages:
        console.print(
            f"{lang}: {result.sentences_used[lang]:,} of {result.sentences_seen[lang]:,} sentences,"
            f" {tok.lang_vocab_sizes[lang]} pieces at ids {tok.offsets[lang]}.."
            f"{tok.offsets[lang] + tok.lang_vocab_sizes[lang] - 1}"
        )
    if result.other_languages:
        counts = ", ".join(f"{n:,} {lang}" for lang, n in sorted(result.other_languages.items()))
        console.print(f"skipped examples in languages not asked for: {counts}")
    console.print(result.skipped.report())
    console.print(f"vocab_size {tok.vocab_size} -> {result.out_dir}")


def info(directory: Annotated[Path, typer.Argument(help="Tokenizer folder.")]) -> None:
    """Print a tokenizer's id layout."""
    from padless.data.tokenizer import CanaryTokenizer

    tok = CanaryTokenizer.load(directory)
    typer.echo(f"vocab_size {tok.vocab_size}, prompt format {tok.prompt_format.name!r}")
    for token, token_id in tok.special_ids.items():
        typer.echo(f"{token_id:6d}  {token}")
    for lang in tok.languages:
        start = tok.offsets[lang]
        typer.echo(f"{start:6d}..{start + tok.lang_vocab_sizes[lang] - 1}  {lang} pieces")
