"""``padless oomptimize``: per-bucket batch sizes that fit a memory budget."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from padless.batchsize.config import (
    OomptimizeConfig,
    Precision,
    ProbeName,
    SimulateConfig,
    StepConfig,
    Target,
)
from padless.batchsize.search import SearchConfig
from padless.cli.options import default_of

_STEP = StepConfig()
_SEARCH = SearchConfig()
_SIMULATE = SimulateConfig()


def register(app: typer.Typer) -> None:
    app.command("oomptimize")(oomptimize)


def oomptimize(
    model: Annotated[str, typer.Option(help="Model preset name or checkpoint path.")],
    plan: Annotated[Path, typer.Option(exists=True, help="plan.json from `padless plan`.")],
    out: Annotated[Path, typer.Option(help="Where to write the batch-size table (JSON).")],
    probe: Annotated[
        ProbeName, typer.Option(help="cuda (real GPU steps), simulate (fake tensors) or cpu.")
    ] = default_of(OomptimizeConfig, "probe"),
    memory_budget: Annotated[
        str | None,
        typer.Option(
            help="Memory the step may use, e.g. 80GiB, 40GB. Required for simulate and cpu; "
            "cuda defaults to --memory-fraction of the device."
        ),
    ] = None,
    memory_fraction: Annotated[
        float, typer.Option(help="cuda probe: share of device memory when no budget.")
    ] = default_of(OomptimizeConfig, "memory_fraction"),
    dtype: Annotated[
        Precision, typer.Option(help="bf16 (fp32 weights + bf16 autocast), fp32 or bf16-pure.")
    ] = _STEP.precision,
    tolerance: Annotated[
        float, typer.Option(help="Relative search tolerance.")
    ] = _SEARCH.tolerance,
    margin: Annotated[
        float, typer.Option(help="Safety margin off the largest fit.")
    ] = _SEARCH.margin,
    target: Annotated[
        Target, typer.Option(help="simulate probe: emulate a cuda GPU or the cpu.")
    ] = _SIMULATE.target,
    allocator: Annotated[
        bool,
        typer.Option(help="simulate: budget vs reserved memory of the allocator, not allocated."),
    ] = _SIMULATE.allocator,
    workers: Annotated[
        int, typer.Option(help="simulate probe: parallel processes.")
    ] = _SIMULATE.workers,
    tokens_per_second: Annotated[
        float | None, typer.Option(help="Token bound for buckets whose plan has none.")
    ] = default_of(OomptimizeConfig, "tokens_per_second"),
    max_batch_size: Annotated[
        int, typer.Option(help="Largest size tried.")
    ] = _SEARCH.max_batch_size,
    plot: Annotated[Path | None, typer.Option(help="Also write a PNG of the table.")] = None,
) -> None:
    """Find the largest batch per bucket whose training step fits in memory."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from padless.batchsize import format_bytes, parse_size
    from padless.batchsize.report import plot as plot_table
    from padless.batchsize.run import oomptimize as run
    from padless.batchsize.search import BucketResult, NoBatchFitsError
    from padless.batchsize.table import read_plan, write_json
    from padless.data.errors import PadlessInputError
    from padless.model import get_config

    try:
        get_config(model)  # an unknown preset or a missing checkpoint: before any search
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--model") from None
    try:
        budget = parse_size(memory_budget) if memory_budget is not None else None
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--memory-budget") from None
    try:
        config = OomptimizeConfig(
            model=model,
            probe=probe,
            budget_bytes=budget,
            memory_fraction=memory_fraction,
            step=replace(_STEP, precision=dtype),
            search=replace(
                _SEARCH, tolerance=tolerance, margin=margin, max_batch_size=max_batch_size
            ),
            simulate=replace(_SIMULATE, target=target, allocator=allocator, workers=workers),
            tokens_per_second=tokens_per_second,
        )
        num_buckets = len(read_plan(plan))
    except ValueError as err:  # includes PlanError
        raise typer.BadParameter(str(err)) from None

    console = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]oomptimize[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("buckets  {task.fields[trials]} trials  {task.fields[last]}"),
        TimeElapsedColumn(),
        console=console,
    )
    trials = 0
    with progress:
        task = progress.add_task("search", total=num_buckets, trials=0, last="")

        def on_trial(shape: object, m: object) -> None:
            nonlocal trials
            trials += 1
            progress.update(task, trials=trials)

        def on_bucket(result: object) -> None:
            assert isinstance(result, BucketResult)
            last = f"bucket {result.shape.index}: {result.batch_size}"
            progress.update(task, advance=1, last=last)

        try:
            outcome = run(plan, config, on_trial=on_trial, on_bucket=on_bucket)
        except NoBatchFitsError as err:  # the budget is too small: bad input, not a bug
            raise PadlessInputError(str(err), "no batch fits") from None

    table = Table(
        title=f"batch sizes: {model}, {config.probe}, {dtype}, {format_bytes(outcome.budget_bytes)}"
    )
    for column in (
        "bucket",
        "max duration",
        "max tokens",
        "batch size",
        "peak memory",
        "batch audio s",
        "trials",
    ):
        table.add_column(column, justify="right")
    for r in outcome.result.buckets:
        peak = format_bytes(r.peak_bytes) + ("" if r.peak_measured else "*")
        table.add_row(
            str(r.shape.index),
            f"{r.shape.max_duration:.2f}",
            str(r.shape.max_tokens),
            str(r.batch_size) + (" (cap)" if r.capped else ""),
            peak,
            f"{r.batch_audio_seconds:.0f}",
            str(len(r.trials)),
        )
    out_console = Console()
    out_console.print(table)
    c = outcome.comparison
    out_console.print(
        f"* peak interpolated from the bucket's trials. Per training step ({c.weighting} "
        f"weighting): mean batch size {c.searched.mean_batch_size:.1f} vs "
        f"{c.heuristic.mean_batch_size:.1f} with the {c.heuristic_seconds:g} s heuristic "
        f"(x{c.batch_size_ratio:.2f}); mean batch audio {c.searched.mean_batch_audio_s:.0f} s vs "
        f"{c.heuristic.mean_batch_audio_s:.0f} s. {outcome.result.num_trials} trials in "
        f"{outcome.result.seconds:.0f} s."
    )
    write_json(out, outcome.document)
    out_console.print(f"wrote {out}")
    if plot is not None:
        plot_table(
            outcome.buckets, list(outcome.result.buckets), c, outcome.budget_bytes, str(plot)
        )
        out_console.print(f"wrote {plot}")
