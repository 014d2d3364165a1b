"""`padless plan` (estimate and save a bucket plan) and `padless bench-sampler` (run the
sampler over manifests, metadata only, every rank in-process, and report what it did)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from padless.sampling.plan import PlanConfig

if TYPE_CHECKING:
    from padless.data.tokenizer import CanaryTokenizer

_PLAN = PlanConfig()


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)
    try:
        from padless.cli.sampling_bench import bench_sampler
    except ModuleNotFoundError as err:  # pragma: no cover - only while the bench is being built
        if err.name != "padless.cli.sampling_bench":
            raise
    else:
        app.command("bench-sampler")(bench_sampler)


def _tokenizer(path: Path | None) -> CanaryTokenizer | None:
    if path is None:
        return None
    from padless.data.tokenizer import CanaryTokenizer

    return CanaryTokenizer.load(path)


def plan(
    manifests: Annotated[
        list[str], typer.Argument(help="Manifests (NeMo/lhotse JSONL, shard folders).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Where to write plan.json.")],
    num_buckets: Annotated[int, typer.Option(help="Duration bins.")] = _PLAN.num_buckets,
    num_subbuckets: Annotated[
        int, typer.Option(help="Token sub-bins per duration bin (1: 1D).")
    ] = 1,
    bins: Annotated[
        str, typer.Option(help="Edge estimator: equal-duration | optimal.")
    ] = _PLAN.bins,
    min_share: Annotated[
        float, typer.Option(help="optimal: least share of an equal bin's sample mass per bin.")
    ] = _PLAN.min_share,
    tokenizer: Annotated[
        Path | None, typer.Option(help="Tokenizer folder, for manifests without num_tokens.")
    ] = None,
    tps_max: Annotated[
        float | None, typer.Option(help="Drop examples above this tokens/s.")
    ] = None,
    min_duration: Annotated[float | None, typer.Option(help="Drop examples shorter (s).")] = None,
    max_duration: Annotated[float | None, typer.Option(help="Drop examples longer (s).")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Drop examples with more tokens.")] = None,
    sample_size: Annotated[
        int, typer.Option(help="Random sample the edges are estimated on.")
    ] = 100_000,
    seed: Annotated[int, typer.Option(help="Seed of the random sample.")] = 0,
    on_error: Annotated[
        str, typer.Option(help="Bad manifest lines: raise | skip (counted).")
    ] = "raise",
    plot: Annotated[
        Path | None, typer.Option(help="Also draw the bucket grid to this PNG.")
    ] = None,
) -> None:
    """Estimate bucket edges on a random sample of the manifests and save the plan."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from padless.data.stream import ExampleStream
    from padless.sampling.filters import FilterConfig
    from padless.sampling.lengths import ExampleLengths
    from padless.sampling.plan import plan_from_examples

    if bins not in ("equal-duration", "optimal"):
        raise typer.BadParameter(
            f"expected equal-duration or optimal, got {bins!r}", param_hint="--bins"
        )
    if on_error not in ("raise", "skip"):
        raise typer.BadParameter(
            f"expected raise or skip, got {on_error!r}", param_hint="--on-error"
        )
    try:
        config = PlanConfig(num_buckets, num_subbuckets, bins, min_share)  # type: ignore[arg-type]
        filters = FilterConfig(min_duration, max_duration, max_tokens, tps_max)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    stream = ExampleStream(manifests, shuffle=False, require_text=False, on_error=on_error)
    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("reading"),
        TextColumn("{task.completed:,} examples"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("read", total=None)
        result, sample_d, sample_t = plan_from_examples(
            stream.open(0),
            config,
            filters,
            lengths=ExampleLengths(_tokenizer(tokenizer)),
            sample_size=sample_size,
            seed=seed,
            on_chunk=lambda n: progress.advance(task, n),
            sample_info={"manifests": list(manifests)},
        )
    if stream.skipped.total:
        console.print(stream.skipped.report())
    result.save(out)
    table = Table(title=f"{out}: {len(result)} buckets", show_edge=False)
    for col in ("bucket", "duration (s)", "tokens", "sample share (dur)"):
        table.add_column(col, justify="right")
    total = sum(b.sample_duration for b in result.buckets) or 1.0
    for b in result.buckets:
        lo_t = "-inf" if b.min_tokens is None else str(b.min_tokens)
        hi_t = "inf" if b.max_tokens is None else str(b.max_tokens)
        table.add_row(
            str(b.index),
            f"({b.min_duration:.2f}, {b.max_duration:.2f}]",
            f"({lo_t}, {hi_t}]" + ("" if result.is_2d else " (info)"),
            f"{b.sample_duration / total:.3f}",
        )
    console.print(table)
    info = result.sample
    console.print(
        f"sample {info['size']:,} of {info['examples_kept']:,} kept examples "
        f"({info['examples_seen']:,} read); filtered: {dict(result.filtered) or 'none'}"
    )
    pad = result.expected_padding
    console.print(
        "padding if padded to bucket edges (a bound): "
        f"audio {pad['audio']:.2%}, tokens {pad['token']:.2%}"
    )
    if plot is not None:
        from padless.sampling.plot import plot_plan

        console.print(f"plot: {plot_plan(result, sample_d, sample_t, plot)}")
