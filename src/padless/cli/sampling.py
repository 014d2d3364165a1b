"""`padless plan` (estimate and save a bucket plan) and `padless bench-sampler` (run the
sampler over manifests, metadata only, every rank in-process, and report what it did)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from padless.cli.errors import at_least, positive
from padless.cli.options import given
from padless.data.errors import OnError
from padless.data.stream import StreamConfig
from padless.sampling.config import (
    BATCHINGS,
    PLAN_SAMPLE_SIZE,
    AssignMode,
    BatchingKind,
    BinEstimator,
    BucketDrawKind,
    PlanConfig,
    SamplerConfig,
    SortedBatching,
    strategy_from_json,
)
from padless.sampling.filters import FilterConfig
from padless.sampling.sync import BUCKET_DRAWS

if TYPE_CHECKING:
    from padless.data.example import Example
    from padless.data.tokenizer import CanaryTokenizer
    from padless.sampling.lengths import ExampleLengths
    from padless.sampling.policies import BatchPolicy
    from padless.sampling.sources import ExampleSource, SourceFactory

_PLAN = PlanConfig()
_FILTERS = FilterConfig()
_STREAM = StreamConfig()


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)
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
    ] = _PLAN.num_subbuckets,
    bins: Annotated[BinEstimator, typer.Option(help="Edge estimator.")] = _PLAN.bins,
    min_share: Annotated[
        float, typer.Option(help="optimal: least share of an equal bin's sample mass per bin.")
    ] = _PLAN.min_share,
    tokenizer: Annotated[
        Path | None, typer.Option(help="Tokenizer folder, for manifests without num_tokens.")
    ] = None,
    tps_max: Annotated[
        float | None, typer.Option(help="Drop examples above this tokens/s.")
    ] = _FILTERS.tps_max,
    min_duration: Annotated[
        float | None, typer.Option(help="Drop examples shorter (s).")
    ] = _FILTERS.min_duration,
    max_duration: Annotated[
        float | None, typer.Option(help="Drop examples longer (s).")
    ] = _FILTERS.max_duration,
    max_tokens: Annotated[
        int | None, typer.Option(help="Drop examples with more tokens.")
    ] = _FILTERS.max_tokens,
    sample_size: Annotated[
        int, typer.Option(help="Random sample the edges are estimated on.")
    ] = PLAN_SAMPLE_SIZE,
    seed: Annotated[int, typer.Option(help="Seed of the random sample.")] = 0,
    on_error: Annotated[
        OnError, typer.Option(help="Bad manifest lines: raise, or skip and count.")
    ] = _STREAM.on_error,
    plot: Annotated[
        Path | None, typer.Option(help="Also draw the bucket grid to this PNG.")
    ] = None,
) -> None:
    """Estimate bucket edges on a random sample of the manifests and save the plan."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from padless.data.stream import ExampleStream
    from padless.sampling.estimate import plan_from_examples
    from padless.sampling.lengths import ExampleLengths

    at_least(1, num_buckets=num_buckets, num_subbuckets=num_subbuckets, sample_size=sample_size)
    try:
        config = PlanConfig(num_buckets, num_subbuckets, bins, min_share)
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


_SAMPLER = SamplerConfig()
_SORTED = SortedBatching()
_PAPER = SamplerConfig.paper()


def bench_sampler(
    ctx: typer.Context,
    manifests: Annotated[
        list[str], typer.Argument(help="Manifests (NeMo/lhotse JSONL, shard folders).")
    ],
    plan_path: Annotated[Path, typer.Option("--plan", help="plan.json from `padless plan`.")],
    batch_duration: Annotated[
        float | None, typer.Option(help="Padded seconds per batch (batch size x longest).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Fixed examples per batch.")] = None,
    batch_sizes: Annotated[
        Path | None, typer.Option(help="Per-bucket batch-size table (padless.batch_sizes JSON).")
    ] = None,
    quadratic_duration: Annotated[
        float | None, typer.Option(help="With --batch-duration: d counts as d + d^2/this.")
    ] = None,
    assignment: Annotated[
        AssignMode,
        typer.Option(help=f"2D bucket assignment (--paper: {_PAPER.assignment})."),
    ] = _SAMPLER.assignment,
    world_size: Annotated[
        int, typer.Option(help="Ranks, each its own sampler on its own data.")
    ] = 1,
    sync: Annotated[
        bool, typer.Option("--sync/--no-sync", help="Shared bucket draws.")
    ] = _SAMPLER.sync,
    concurrent: Annotated[
        bool, typer.Option(help="Read in a producer thread.")
    ] = _SAMPLER.concurrent,
    buffer_size: Annotated[
        int | None,
        typer.Option(help="Examples in each sampler's buffer (default: from plan and policy)."),
    ] = _SAMPLER.buffer_size,
    seed: Annotated[
        int, typer.Option(help="Seed of the sampler (and of the data split).")
    ] = _SAMPLER.seed,
    data_seed: Annotated[
        int | None, typer.Option(help="Seed of the data split's shuffle, if not --seed.")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Epochs to run.")] = 1,
    batching: Annotated[
        BatchingKind,
        typer.Option(help=f"Batch formation (--paper: {_PAPER.batching.kind})."),
    ] = _SAMPLER.batching.kind,  # type: ignore[assignment]  # a kind, which is a BatchingKind
    bucket_draw: Annotated[
        BucketDrawKind,
        typer.Option(help=f"Bucket draw (--paper: {_PAPER.bucket_draw.kind})."),
    ] = _SAMPLER.bucket_draw.kind,  # type: ignore[assignment]  # a kind: a BucketDrawKind
    paper: Annotated[
        bool, typer.Option(help="The paper's sampler: random batches, uniform draws, strict 2D.")
    ] = False,
    lanes: Annotated[
        int, typer.Option(help="Sorted batching: length lanes per bucket.")
    ] = _SORTED.lanes,
    spread: Annotated[
        float,
        typer.Option(help="Sorted batching: a batch is a random subset of spread x its size."),
    ] = _SORTED.spread,
    tokenizer: Annotated[
        Path | None, typer.Option(help="Tokenizer folder, for manifests without num_tokens.")
    ] = None,
    preload: Annotated[
        bool, typer.Option(help="Read every rank's examples into memory first (not timed).")
    ] = False,
    dump_batches: Annotated[
        Path | None, typer.Option(help='One JSON line per batch: {"rank","step","bucket","ids"}.')
    ] = None,
    resume_from_step: Annotated[
        int | None, typer.Option(help="Save state at step K, restore it in a fresh sampler.")
    ] = None,
    compare: Annotated[str | None, typer.Option(help="Also run a peer: lhotse.")] = None,
    lhotse_rss: Annotated[
        bool, typer.Option(help="With --compare lhotse: measure its peak RSS in a subprocess.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run the sampler over manifests (metadata only) for every rank in this process and
    report padding, batch counts, filters, throughput, first-batch time and peak RSS."""
    import json
    import sys

    from padless.peers.compare import compare_with_lhotse, ratios, run_samplers
    from padless.peers.rss import peak_rss_mb
    from padless.sampling.balance import ReplayCache
    from padless.sampling.engine import buffer_size as buffer_size_for
    from padless.sampling.lengths import ExampleLengths
    from padless.sampling.plan import BucketPlan, PlanError
    from padless.sampling.policies import (
        BucketBatchSizes,
        DurationBudget,
        FixedBatchSize,
    )
    from padless.sampling.sampler import DynamicBucketingSampler
    from padless.sampling.sources import manifest_sources

    baseline_rss = peak_rss_mb()
    at_least(1, world_size=world_size, epochs=epochs, batch_size=batch_size)
    positive(batch_duration=batch_duration)
    if sum(x is not None for x in (batch_duration, batch_size, batch_sizes)) != 1:
        raise typer.BadParameter(
            "give exactly one of --batch-duration, --batch-size, --batch-sizes"
        )
    if compare not in (None, "lhotse"):
        raise typer.BadParameter(f"unknown peer {compare!r}; only lhotse", param_hint="--compare")
    try:
        the_plan = BucketPlan.load(plan_path)
        policy: BatchPolicy
        if batch_duration is not None:
            policy = DurationBudget(batch_duration, quadratic_duration)
        elif batch_size is not None:
            policy = FixedBatchSize(batch_size)
        else:
            assert batch_sizes is not None
            policy = BucketBatchSizes.load(batch_sizes, the_plan)
        config = _sampler_config(ctx, paper)
    except (PlanError, ValueError) as err:
        raise typer.BadParameter(str(err)) from err
    lengths = ExampleLengths(_tokenizer(tokenizer))
    sources: SourceFactory = manifest_sources(
        manifests, seed=seed if data_seed is None else data_seed
    )
    per_rank: list[list[Example]] | None = None
    if preload or compare == "lhotse":
        per_rank = _read_ranks(sources, world_size, lengths)
    if preload:
        assert per_rank is not None
        sources = _PerRank(per_rank)

    cache = ReplayCache()  # ranks share their replays of each other's lanes (see peers/compare.py)

    def make(rank: int) -> DynamicBucketingSampler:
        return DynamicBucketingSampler(
            sources,
            the_plan,
            policy,
            config,
            rank=rank,
            world_size=world_size,
            lengths=lengths,
            replay_cache=cache,
        )

    dump = dump_batches.open("w") if dump_batches is not None else None
    try:
        report = run_samplers(
            make, world_size, epochs=epochs, resume_from_step=resume_from_step, dump=dump
        )
    finally:
        if dump is not None:
            dump.close()
    out = report.to_json()
    _check_losses(manifests, out)
    out["baseline_rss_mb"] = round(baseline_rss, 1)
    out["config"] = {
        "plan": str(plan_path),
        "buckets": len(the_plan),
        "policy": policy.describe(),
        "sampler": {k: v for k, v in config.to_json().items() if k != "filters"},
        "buffer_size": buffer_size_for(the_plan, policy, config),
        "filters": the_plan.filters.to_json(),
        "preload": preload,
        "manifests": list(manifests),
    }
    if compare == "lhotse":
        assert per_rank is not None
        out["lhotse"] = compare_with_lhotse(
            per_rank, the_plan, policy, config, lhotse_rss and not preload, preload
        )
        out["ratios"] = ratios(out, out["lhotse"])
    if as_json:
        sys.stdout.write(json.dumps(out) + "\n")
    else:
        _print_report(out)


def _sampler_config(ctx: typer.Context, paper: bool) -> SamplerConfig:
    """The padless (or, with --paper, the paper's) sampler with only the options the user gave
    replaced. --lanes and --spread belong to sorted batching."""
    base = SamplerConfig.paper() if paper else SamplerConfig()
    options = given(ctx, "batching", "bucket_draw", "lanes", "spread")
    batching = base.batching
    if "batching" in options:
        batching = strategy_from_json(BATCHINGS, options["batching"], "batching")
    sorted_settings = {k: options[k] for k in ("lanes", "spread") if k in options}
    if sorted_settings:
        if not isinstance(batching, SortedBatching):
            raise ValueError("--lanes and --spread apply to --batching sorted")
        batching = replace(batching, **sorted_settings)
    bucket_draw = base.bucket_draw
    if "bucket_draw" in options:
        bucket_draw = strategy_from_json(BUCKET_DRAWS, options["bucket_draw"], "bucket_draw")
    overrides = given(ctx, "assignment", "buffer_size", "seed", "sync", "concurrent")
    return replace(base, batching=batching, bucket_draw=bucket_draw, **overrides)


def _check_losses(manifests: list[str], out: dict[str, Any]) -> None:
    """No batches is an error, more than half of the examples dropped a warning; both name
    the counts by reason (filters, outside the plan, rank balance)."""
    from padless.data.errors import NoExamplesError

    dropped = sum(out["filtered"].values())
    total = out["examples"] + dropped
    reasons = ", ".join(
        f"{n:,} {r}" for r, n in sorted(out["filtered"].items(), key=lambda x: -x[1])
    )
    if total == 0:
        raise NoExamplesError.empty(manifests)
    if out["examples"] == 0:
        raise NoExamplesError(f"all {total:,} examples were dropped ({reasons})")
    if 2 * dropped > total:
        typer.echo(
            f"warning: {dropped:,} of {total:,} examples ({dropped / total:.0%}) were dropped: "
            f"{reasons}",
            err=True,
        )


class _PerRank:
    """A source factory over examples already read per rank."""

    def __init__(self, per_rank: list[list[Example]]) -> None:
        self.per_rank = per_rank

    def __call__(self, *, rank: int, world_size: int) -> ExampleSource:
        from padless.sampling.sources import ExampleList

        if world_size != len(self.per_rank):
            raise ValueError(f"read for {len(self.per_rank)} ranks, asked for {world_size}")
        return ExampleList(self.per_rank[rank])


def _read_ranks(
    sources: SourceFactory, world_size: int, lengths: ExampleLengths
) -> list[list[Example]]:
    """Every rank's examples of epoch 0, with num_tokens filled in."""
    out = []
    for rank in range(world_size):
        examples = list(sources(rank=rank, world_size=world_size).open(0))
        for start in range(0, len(examples), 8192):
            lengths(examples[start : start + 8192])  # counts and caches missing num_tokens
        out.append(examples)
    return out


def _print_report(out: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    peer = out.get("lhotse")
    table = Table(title="bench-sampler", show_edge=False)
    table.add_column("")
    table.add_column("padless", justify="right")
    if peer:
        table.add_column("lhotse", justify="right")
        table.add_column("padless / lhotse", justify="right")
    rows = [
        ("examples", "examples", "{:,}"),
        ("batches per rank", "batches", "{}"),
        ("audio padding", "audio_padding", "{:.2%}"),
        ("token padding", "token_padding", "{:.2%}"),
        ("mean batch size", "mean_batch_size", "{:.1f}"),
        ("mean batch seconds", "mean_batch_seconds", "{:.1f}"),
        ("examples/s (sampler)", "examples_per_s", "{:,.0f}"),
        ("first batch (s)", "first_batch_s", "{:.3f}"),
        ("peak RSS (MB)", "peak_rss_mb", "{:.0f}"),
        ("rank agreement", "rank_agreement", "{:.1%}"),
        ("agreement by tenth", "rank_agreement_by_tenth", "{}"),
        ("max-duration spread", "max_duration_spread", "{}"),
        ("filtered", "filtered", "{}"),
    ]
    ratios = out.get("ratios", {})
    for label, key, fmt in rows:

        def show(d: dict[str, Any], key: str = key, fmt: str = fmt) -> str:
            v = d.get(key)
            return "-" if v is None else fmt.format(v)

        cells = [label, show(out)]
        if peer:
            r = ratios.get(key)
            cells += [show(peer), "" if r is None else f"{r:.2f}x"]
        table.add_row(*cells)
    console.print(table)
    if "resume" in out:
        console.print(f"resume: {out['resume']}")
