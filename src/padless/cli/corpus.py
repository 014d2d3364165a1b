"""`padless corpus synth`, `padless manifest stats` and `padless demo` (what `make demo` runs).

The demo is a list of steps (`DEMO_STEPS`), each a function of a `DemoContext`; later stages
(bucket planning, training, evaluation) are added as more steps.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from padless.cli.errors import at_least, input_errors, positive
from padless.data.corpus.config import CorpusConfig
from padless.data.errors import OnError
from padless.data.stream import StreamConfig

if TYPE_CHECKING:
    from rich.console import Console

    from padless.data.corpus.writer import CorpusSummary
    from padless.data.example import Example
    from padless.data.stats import Distribution, GroupStats, ManifestStats

_CORPUS = CorpusConfig()
_STREAM = StreamConfig()
#: Pieces per language of the demo tokenizer. The 0.6 h demo corpus holds 6-9k characters and
#: 150-220 distinct words per language: SentencePiece refuses more than ~800 pieces, and 256 or
#: more pieces outnumber the distinct words. 128 gives a 524-id vocabulary and a median of
#: 9 tokens/s, prompt and EOS included (bench/demo_vocab.py has the measurements).
DEMO_VOCAB_PER_LANG = 128


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


@dataclass
class DemoContext:
    """What the demo steps share: settings, the console, and what earlier steps produced."""

    out: Path
    hours: float
    seed: int
    workers: int | None
    vocab_per_lang: int
    console: Console
    manifests: dict[str, Path] | None = None  # split -> NeMo manifest (the corpus step)
    tokenizer_dir: Path | None = None  # (the tokenizer step)


def _demo_corpus(ctx: DemoContext) -> None:
    from padless.data.corpus.writer import is_complete, manifest_paths, synthesize_corpus

    config = CorpusConfig(hours=ctx.hours, seed=ctx.seed)
    if is_complete(ctx.out, config):
        ctx.console.print(f"kept the corpus already in {ctx.out} (corpus.json: same settings)")
    else:
        _print_summary(ctx.console, synthesize_corpus(config, ctx.out, workers=ctx.workers))
    ctx.manifests = manifest_paths(ctx.out)


def _demo_tokenizer(ctx: DemoContext) -> None:
    from padless.data.tokenizer import TokenizerTrainConfig, train_tokenizer

    assert ctx.manifests is not None, "the corpus step runs first"
    config = TokenizerTrainConfig(vocab_per_lang=ctx.vocab_per_lang, seed=ctx.seed)
    result = train_tokenizer([str(ctx.manifests["train"])], ctx.out / "tokenizer", config)
    tok = result.tokenizer
    used = ", ".join(f"{lang} {result.sentences_used[lang]:,}" for lang in tok.languages)
    ctx.console.print(
        f"tokenizer: {ctx.vocab_per_lang} pieces x {len(tok.languages)} languages, "
        f"vocab_size {tok.vocab_size}, trained on train.jsonl ({used} sentences) "
        f"-> {result.out_dir}"
    )
    ctx.tokenizer_dir = result.out_dir


def _demo_stats(ctx: DemoContext) -> None:
    from padless.data.stats import plot_stats

    assert ctx.manifests is not None, "the corpus step runs first"
    paths = [str(p) for p in ctx.manifests.values()]
    result, _ = _compute_stats(paths, ctx.tokenizer_dir, skip=False, console=ctx.console)
    print_stats(ctx.console, result)
    ctx.console.print(f"plot -> {plot_stats(result, ctx.out / 'stats.png')}")


#: The demo, in order: (name, step). Later stages append here.
DEMO_STEPS: tuple[tuple[str, Callable[[DemoContext], None]], ...] = (
    ("synthesize the corpus", _demo_corpus),
    ("train the tokenizer", _demo_tokenizer),
    ("statistics and plot", _demo_stats),
)


def demo(
    out: Annotated[Path, typer.Option("--out", help="Demo folder.")] = Path("data/demo"),
    hours: Annotated[float, typer.Option(help="Hours of audio in the corpus.")] = _CORPUS.hours,
    seed: Annotated[int, typer.Option(help="Seed of the corpus and tokenizer.")] = _CORPUS.seed,
    workers: Annotated[
        int | None, typer.Option(help="Synthesis processes (default: all usable CPUs).")
    ] = None,
    vocab_per_lang: Annotated[
        int, typer.Option(help="Tokenizer pieces per language.")
    ] = DEMO_VOCAB_PER_LANG,
) -> None:
    """The end-to-end demo: synthesize the corpus (kept if already there), train the tokenizer,
    print statistics and write OUT/stats.png."""
    from rich.console import Console
    from rich.rule import Rule

    positive(hours=hours)
    at_least(1, workers=workers)
    at_least(2, vocab_per_lang=vocab_per_lang)  # checked now, not after the synthesis
    console = Console()
    ctx = DemoContext(out, hours, seed, workers, vocab_per_lang, console)
    started = time.perf_counter()
    for number, (name, step) in enumerate(DEMO_STEPS, start=1):
        console.print(Rule(f"[{number}/{len(DEMO_STEPS)}] {name}"))
        step_started = time.perf_counter()
        with input_errors():
            step(ctx)
        took = time.perf_counter() - step_started
        shown = f"{took:.1f} s" if took >= 0.1 else f"{took * 1000:.0f} ms"
        console.print(f"[dim]{name}: {shown}[/dim]")
    console.print(Rule(f"demo done in {time.perf_counter() - started:.1f} s -> {out}"))
