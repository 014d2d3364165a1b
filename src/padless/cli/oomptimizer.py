"""``padless oomptimize``: per-bucket batch sizes that fit a memory budget."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("oomptimize")(oomptimize)


def oomptimize(
    model: str = typer.Option(..., "--model", help="Model preset name or checkpoint path."),
    plan: Path = typer.Option(..., "--plan", exists=True, help="plan.json from `padless plan`."),
    out: Path = typer.Option(..., "--out", help="Where to write the batch-size table (JSON)."),
    probe: str = typer.Option(
        "simulate", "--probe", help="cuda (real GPU steps) | simulate (fake tensors) | cpu."
    ),
    memory_budget: str | None = typer.Option(
        None,
        "--memory-budget",
        help="Memory the step may use, e.g. 80GiB, 40GB. Required for simulate and cpu; "
        "cuda defaults to --memory-fraction of the device.",
    ),
    memory_fraction: float = typer.Option(
        0.9, "--memory-fraction", help="cuda probe: share of device memory when no budget."
    ),
    dtype: str = typer.Option(
        "bf16", "--dtype", help="bf16 (fp32 weights + bf16 autocast) | fp32 | bf16-pure."
    ),
    tolerance: float = typer.Option(0.05, "--tolerance", help="Relative search tolerance."),
    margin: float = typer.Option(0.1, "--margin", help="Safety margin off the largest fit."),
    target: str = typer.Option(
        "cuda", "--target", help="simulate probe: emulate a cuda GPU or the cpu."
    ),
    no_allocator: bool = typer.Option(
        False, "--no-allocator", help="simulate: budget vs allocated, not reserved memory."
    ),
    workers: int = typer.Option(1, "--workers", help="simulate probe: parallel processes."),
    tokens_per_second: float | None = typer.Option(
        None, "--tokens-per-second", help="Token bound for buckets whose plan has none."
    ),
    max_batch_size: int = typer.Option(16384, "--max-batch-size", help="Largest size tried."),
    plot: Path | None = typer.Option(None, "--plot", help="Also write a PNG of the table."),
) -> None:
    """Find the largest batch per bucket whose training step fits in memory."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from padless.batchsize import format_bytes, parse_size
    from padless.batchsize.report import plot as plot_table
    from padless.batchsize.run import OomptimizeConfig
    from padless.batchsize.run import oomptimize as run
    from padless.batchsize.search import NoBatchFitsError, SearchConfig
    from padless.batchsize.simulate import SimulateConfig
    from padless.batchsize.table import read_plan, write_json
    from padless.batchsize.workload import StepConfig
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
            probe=probe,  # type: ignore[arg-type]
            budget_bytes=budget,
            memory_fraction=memory_fraction,
            step=StepConfig(precision=dtype),  # type: ignore[arg-type]
            search=SearchConfig(tolerance=tolerance, margin=margin, max_batch_size=max_batch_size),
            simulate=SimulateConfig(
                target=target,  # type: ignore[arg-type]
                allocator=not no_allocator,
                workers=workers,
            ),
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
            from padless.batchsize.search import BucketResult

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
