"""`padless corpus synth`, `padless manifest stats` and `padless demo` (what `make demo` runs;
the steps are in `padless.demo.steps`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from padless.cli.errors import at_least, input_errors, positive
from padless.data.corpus.config import CorpusConfig
from padless.data.errors import OnError
from padless.data.stream import StreamConfig
from padless.demo.config import DemoConfig

if TYPE_CHECKING:
    from rich.console import Console

    from padless.data.corpus.writer import CorpusSummary
    from padless.data.example import Example
    from padless.data.stats import Distribution, GroupStats, ManifestStats

_CORPUS = CorpusConfig()
_STREAM = StreamConfig()


def register(app: typer.Typer) -> None:
    corpus = typer.Typer(help="The embedded multilingual espeak-ng corpus.", no_args_is_help=True)
    corpus.command("synth")(synth)
    app.add_typer(corpus, name="corpus")
    manifest = typer.Typer(help="Inspect manifests.", no_args_is_help=True)
    manifest.command("stats")(stats)
    app.add_typer(manifest, name="manifest")
    app.command("demo")(demo)


# ---------------------------------------------------------------------------------- corpus synth


def synth(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    hours: Annotated[float, typer.Option(help="Hours of audio to generate.")] = _CORPUS.hours,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = _CORPUS.seed,
    workers: Annotated[
        int | None, typer.Option(help="Synthesis processes (default: all usable CPUs).")
    ] = None,
    shard_size: Annotated[int, typer.Option(help="Utterances per tar shard.")] = _CORPUS.shard_size,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Synthesize the en/de/fr/es corpus (ASR + AST) into OUT: FLAC audio, NeMo manifests
    train/dev/test.jsonl, and indexed shards under OUT/shards/."""
    from rich.console import Console

    from padless.data.corpus.writer import synthesize_corpus

    console = Console(stderr=True)
    positive(hours=hours)
    at_least(1, shard_size=shard_size, workers=workers)
    config = CorpusConfig(hours=hours, seed=seed, shard_size=shard_size)
    with input_errors():
        summary = synthesize_corpus(config, out, workers=workers, progress=progress)
    _print_summary(console, summary)


def _print_summary(console: Console, summary: CorpusSummary) -> None:
    from rich.table import Table

    table = Table(title=f"corpus in {summary.out_dir}", title_justify="left")
    table.add_column("split / direction")
    table.add_column("utterances", justify="right")
    table.add_column("hours", justify="right")
    for name, (count, seconds) in [*summary.by_split.items(), *summary.by_direction.items()]:
        table.add_row(name, f"{count:,}", f"{seconds / 3600:.3f}")
        if name == "test":
            table.add_section()
    table.add_section()
    table.add_row("total", f"{summary.utterances:,}", f"{summary.seconds / 3600:.3f}")
    console.print(table)
    console.print(
        f"{summary.seconds:,.0f} s of audio in {summary.wall_seconds:.1f} s "
        f"(shards {summary.shard_seconds:.1f} s) with {summary.workers} workers: "
        f"{summary.speed:.0f}x real time"
    )


# ------------------------------------------------------------------------------- manifest stats


def stats(
    manifests: Annotated[
        list[str],
        typer.Argument(help="NeMo / lhotse manifests or shard folders (paths or fsspec URLs)."),
    ],
    tokenizer: Annotated[
        Path | None,
        typer.Option(help="Tokenizer folder; tokens = prompt + text + EOS. Default: num_tokens."),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write the duration / tokens-per-second plot here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    on_error: Annotated[
        OnError, typer.Option(help="Malformed lines: raise, or skip and count.")
    ] = _STREAM.on_error,
) -> None:
    """Counts, hours, duration and output-rate percentiles per language and task."""
    import orjson
    from rich.console import Console

    from padless.data.stats import plot_stats

    console = Console(stderr=True)
    with input_errors():
        result, skipped = _compute_stats(manifests, tokenizer, on_error == "skip", console)
    if as_json:
        report = result.to_json()
        report["skipped"] = dict(skipped)
        typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        print_stats(Console(), result)
        if skipped:
            console.print(f"skipped {sum(skipped.values()):,} malformed lines: {dict(skipped)}")
    if plot is not None:
        console.print(f"plot -> {plot_stats(result, plot)}")


def _compute_stats(
    manifests: list[str], tokenizer_dir: Path | None, skip: bool, console: Console
) -> tuple[ManifestStats, dict[str, int]]:
    from padless.data.stats import manifest_stats
    from padless.data.stream import read_manifest
    from padless.data.tokenizer import CanaryTokenizer

    tokenizer = CanaryTokenizer.load(tokenizer_dir) if tokenizer_dir is not None else None
    examples = read_manifest(manifests, require_text=False, on_error="skip" if skip else "raise")
    with _counting(console, "reading") as count:
        result = manifest_stats(count(examples), manifests, tokenizer)
    return result, dict(examples.skipped.by_reason)


def print_stats(console: Console, result: ManifestStats) -> None:
    """The statistics as rich tables: counts and durations, then output rates, per direction."""
    from rich import box
    from rich.table import Table

    groups = [*result.groups, result.overall]
    percentiles = [f"p{p:g}" for p in result.overall.duration.percentiles]

    def number(value: float, digits: int) -> str:
        return f"{value:.{digits if abs(value) < 100 else 0}f}"  # 1495 s, not 1495.00

    def table(title: str, pick: Callable[[GroupStats], Distribution | None], digits: int) -> Table:
        counts = pick is _duration  # the first table carries the counts
        out = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, collapse_padding=True)
        out.add_column("direction", no_wrap=True)
        for name in ("utts", "hours") if counts else ("n",):
            out.add_column(name, justify="right", no_wrap=True)
        for name in ("mean", "min", *percentiles, "max"):
            out.add_column(name, justify="right", no_wrap=True)
        for group in groups:
            if group is result.overall:
                out.add_section()
            dist = pick(group)
            cells = ["-"] * (len(percentiles) + 3)
            if dist is not None:
                values = [dist.mean, dist.min, *dist.percentiles.values(), dist.max]
                cells = [number(v, digits) for v in values]
            first = [f"{group.count:,}", f"{group.hours:,.2f}"]
            if not counts:
                first = [f"{group.count - group.without_rate:,}"]
            out.add_row(group.name, *first, *cells)
        return out

    console.print(table("duration (s)", _duration, 2))
    console.print(table(f"output rate ({result.rate_unit})", lambda g: g.rate, 1))
    if result.rate_unit == "chars/s":
        console.print(table("words per second", lambda g: g.words_per_second, 2))
    console.print(f"rate: {result.rate_source}")
    for note in result.notes:
        console.print(f"note: {note}")


def _duration(group: GroupStats) -> Distribution:
    return group.duration


@contextlib.contextmanager
def _counting(
    console: Console, label: str, every: int = 10_000
) -> Iterator[Callable[[Iterable[Example]], Iterator[Example]]]:
    """Yields ``count(examples)``: the same examples, with a live count of those read so far."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn(label), TextColumn("{task.completed:,} examples"))
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def count(examples: Iterable[Example]) -> Iterator[Example]:
            n = 0
            for n, example in enumerate(examples, start=1):
                if n % every == 0:
                    bar.update(task, completed=n)
                yield example
            bar.update(task, completed=n)

        yield count


# ----------------------------------------------------------------------------------------- demo

_DEMO = DemoConfig()


def demo(
    out: Annotated[Path, typer.Option("--out", help="Demo folder.")] = _DEMO.out,
    quick: Annotated[
        bool, typer.Option(help="A tiny corpus and a few steps: checks every stage in a minute.")
    ] = False,
    config: Annotated[
        Path, typer.Option("--config", help="The training recipe.")
    ] = _DEMO.training_config,
    hours: Annotated[
        float | None, typer.Option(help="Hours of audio in the corpus (--quick: its own).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the corpus and tokenizer.")] = _DEMO.seed,
    workers: Annotated[
        int | None, typer.Option(help="Synthesis processes (default: all usable CPUs).")
    ] = _DEMO.workers,
    vocab_per_lang: Annotated[
        int, typer.Option(help="Tokenizer pieces per language.")
    ] = _DEMO.vocab_per_lang,
) -> None:
    """The end-to-end demo: corpus, tokenizer, bucket plan, batch sizes, padding against the
    fixed-batch baseline, training, evaluation, RTFx; writes OUT/report.md and OUT/report.json.
    Steps whose outputs are already there with the same settings are kept."""
    import dataclasses

    from rich.console import Console

    from padless.demo.config import REPORT_MD
    from padless.demo.report import headline, print_headline
    from padless.demo.steps import run_demo

    positive(hours=hours)
    at_least(1, workers=workers)
    at_least(2, vocab_per_lang=vocab_per_lang)  # checked now, not after the synthesis
    settings = DemoConfig(
        out=out, training_config=config, seed=seed, workers=workers, vocab_per_lang=vocab_per_lang
    )
    if quick:
        settings = settings.quick_variant()
    if hours is not None:
        settings = dataclasses.replace(settings, hours=hours)
    console = Console()
    with input_errors():
        ctx = run_demo(settings, console)
    print_headline(console, headline(settings, ctx.results), out / REPORT_MD)
