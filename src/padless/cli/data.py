"""`padless shard`: write manifests as indexed tar shards (see padless.data.shards)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from padless.cli.errors import at_least
from padless.data.errors import OnError
from padless.data.shards import ShardWriterConfig
from padless.data.stream import StreamConfig

_DEFAULTS = ShardWriterConfig()
_STREAM = StreamConfig()


def register(app: typer.Typer) -> None:
    app.command("shard")(shard)


def shard(
    manifests: Annotated[
        list[str],
        typer.Argument(help="NeMo or lhotse manifests, or shard folders (paths or fsspec URLs)."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Output folder (local).")],
    shard_size: Annotated[int, typer.Option(help="Examples per shard.")] = _DEFAULTS.shard_size,
    jobs: Annotated[
        int, typer.Option(help="Processes encoding FLAC (output does not depend on it).")
    ] = _DEFAULTS.jobs,
    on_error: Annotated[
        OnError,
        typer.Option(help="Malformed lines, unreadable audio: raise, or skip and count."),
    ] = _DEFAULTS.on_error,
    require_text: Annotated[
        bool, typer.Option(help="Every example must have a text (off for unlabelled audio).")
    ] = _STREAM.require_text,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing shard set in --out.")
    ] = _DEFAULTS.overwrite,
) -> None:
    """Write WebDataset-style tar shards (FLAC + JSON members) with a JSON-lines byte-offset
    index per shard and DIR/shards.json."""
    from rich.console import Console
    from rich.progress import MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from padless.data.errors import NoExamplesError
    from padless.data.shards import write_shards
    from padless.data.stream import read_manifest

    at_least(1, shard_size=shard_size, jobs=jobs)
    config = ShardWriterConfig(
        shard_size=shard_size, jobs=jobs, on_error=on_error, overwrite=overwrite
    )
    examples = read_manifest(manifests, require_text=require_text, on_error=on_error)
    console = Console(stderr=True, soft_wrap=True)  # paths and file:line stay on one line
    with Progress(
        TextColumn("sharding"),
        MofNCompleteColumn(),
        TextColumn("examples"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("shard", total=None)
        try:
            result = write_shards(examples, out, config, progress=lambda n: bar.advance(task, n))
        except NoExamplesError as err:
            notes = (
                [f"manifest lines: {examples.skipped.report()}"] if examples.skipped.total else []
            )
            if err.skipped is not None and err.skipped.total:
                notes.append(f"audio and ids: {err.skipped.report()}")
            raise NoExamplesError.empty(manifests, "; ".join(notes)) from None
    shards = result.shards
    hours = shards.duration / 3600
    size_mb = sum(s.tar_bytes for s in shards.shards) / 1e6
    console.print(
        f"wrote {len(shards.shards)} shard(s), {shards.examples:,} examples, "
        f"{hours:.2f} h of audio, {size_mb:,.1f} MB to {out} in {result.seconds:.1f} s "
        f"({shards.duration / max(result.seconds, 1e-9):,.0f}x real time)"
    )
    console.print(f"manifest lines: {examples.skipped.report()}")
    console.print(f"audio and ids: {result.skipped.report()}")
    for message in examples.skipped.examples + result.skipped.examples:
        console.print(f"  {message}")
