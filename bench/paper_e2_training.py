"""Paper experiment E2(b), sampling schemes A-D (and padless's defaults, E) in real training runs:
the demo recipe (configs/demo-tiny.yaml: tiny Flash-shaped model, fp32 on the CPU) on the
embedded corpus, one run per scheme for the same wall time, only the sampling changed.

The schemes (the paper's, then padless's):

- A: 1D plan of 30 equal-duration buckets, random batches inside them (lhotse's sampler,
  `SamplerConfig.paper`), a duration budget per batch;
- B: A + the TPS filter (tokens per second <= 25);
- C: B + the batch size of every bucket searched for a memory budget;
- D: C on a 2D plan, 30 duration x 2 token buckets;
- E: D with padless's defaults: optimal bins, sorted batches (output-length lanes), inflow
  bucket draws, flexible assignment.

The duration budget of A and B, scaled to this setting the way the paper's is set: the paper's
360 s are 9 utterances of its longest (40 s). Ours is the batch size the same search (simulated
probe, CPU target, fp32) finds for A's longest bucket within the CPU memory budget, times that
bucket's longest duration: the largest duration budget under which the longest batch still
fits. Shorter buckets may then hold batches that would not (each run's peak RSS is in the
table).

The batch sizes of C-E come from the same search for the recipe's model (`padless.batchsize`,
the simulated probe targeting the CPU, fp32), as ``padless demo`` plans its batches.

Reported per scheme, from RUN/metrics.jsonl (`padless.eval.plot_run.read_run`; `plot_runs`
overlays the runs and gives the loss at equal wall time with `loss_near`): mean batch size and
its ratio to A, audio and token padding, audio seconds per wall second and per CPU second with
the ratio to A, training loss at equal wall time, steps, peak RSS of the training process.
Paper: C = 3.4x and D = 5x A's mean batch size, D's padding 4.5% audio / 19% tokens.
A run's wall time is ``train.max_time``, which counts the process's start-up (a few seconds
idle); the losses are compared at equal cumulative step time.

Quick check: 1 h corpus, 8 duration buckets instead of 30, a coarser search (tolerance 0.2),
20 s of training per scheme. Measured 5 min 5 s under ``nice -n 19`` on the shared 2-core
machine at a load average of 4-5; on 2 idle cores 2 min 53 s (its slow test, fresh clone):

    python bench/paper_e2_training.py --quick

Full run (the record's numbers): 4 h corpus, 30 (x2) buckets, 512 MiB budget, 8 minutes of
training per scheme. Measured 44 min 22 s on 2 idle cores with ``--corpus`` pointing at the
demo's 4 h corpus (5 x 8 min of training, start-ups and the simulated searches); making the
corpus adds about a minute:

    python bench/paper_e2_training.py

With ``--memory-budget 2GiB`` the search sizes A's budget at 18 x 20 s = 360 s (measured on the
1 h corpus), the paper's own figure, but every step then carries ~6x the audio of the 512 MiB
setting and 8 minutes hold too few steps to compare losses.

Writes bench/results/<date>-e2-training.{md,json} and <date>-e2-training-loss.png (plot-run's
loss overlay of the five runs). ``--out-dir`` and ``--work`` redirect both.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from padless.eval.plot_run import plot_runs, read_run
from padless.train.config import load_training_config
from paper import PaperRow, fill_defaults, paper_table, rows_json
from record import REPO, RESULTS, command, environment, record_path, write_json_record, write_record
from train_runs import (
    PAPER_SAMPLER,
    corpus_overrides,
    ensure_corpus,
    make_plan,
    mean_batch,
    plan_summary,
    search_longest,
    search_table,
    train,
)

NAME = "e2-training"
#: The paper's figures for E2 (relative to scheme A, and D's padding).
PAPER = {
    "batch_C_over_A": 3.4,
    "batch_D_over_A": 5.0,
    "D_audio_padding": 0.045,
    "D_token_padding": 0.19,
}
#: The paper's duration budget of A and the longest utterance it was set for.
PAPER_BUDGET_S, PAPER_LONGEST_S = 360.0, 40.0
FULL = {"hours": 4.0, "num_buckets": 30, "minutes": 8.0, "tolerance": 0.05}
QUICK = {"hours": 1.0, "num_buckets": 8, "minutes": 1 / 3, "tolerance": 0.2}


@dataclass(frozen=True)
class Scheme:
    """One way of sampling batches."""

    name: str
    label: str
    subbuckets: int  # token sub-buckets per duration bucket
    bins: str  # bucket edge estimator
    tps_filter: bool
    searched: bool  # batch size per bucket from the search (else the duration budget)
    paper_sampler: bool  # lhotse's sampler (else padless's defaults)


SCHEMES = (
    Scheme("A", "1D, duration budget", 1, "equal-duration", False, False, True),
    Scheme("B", "A + TPS filter", 1, "equal-duration", True, False, True),
    Scheme("C", "B + searched batch sizes", 1, "equal-duration", True, True, True),
    Scheme("D", "C + 2D plan", 2, "equal-duration", True, True, True),
    Scheme(
        "E", "D + padless defaults (optimal bins, sorted batches)", 2, "optimal", True, True, False
    ),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short check (see the docstring)")
    parser.add_argument("--config", default="configs/demo-tiny.yaml")
    parser.add_argument("--hours", type=float, help=f"corpus size (full {FULL['hours']})")
    parser.add_argument("--num-buckets", type=int, help="duration buckets (full 30)")
    parser.add_argument("--minutes", type=float, help="wall time of each run (full 8)")
    parser.add_argument("--tolerance", type=float, help="batch-size search tolerance (0.05)")
    parser.add_argument("--memory-budget", default="512MiB")
    parser.add_argument("--tps-max", type=float, default=25.0)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of a run")
    parser.add_argument("--schemes", default="ABCDE", help="which schemes to run (A first)")
    parser.add_argument("--corpus", type=Path, help="an existing corpus (default: made in --work)")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "paper-e2")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    fill_defaults(args, QUICK if args.quick else FULL)
    if not args.schemes.startswith("A") or set(args.schemes) - set("ABCDE"):
        parser.error("--schemes: letters of ABCDE, A first (the others are relative to it)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    load_before = os.getloadavg()
    started = time.perf_counter()
    phases: dict[str, float] = {}
    corpus = args.corpus or ensure_corpus(args.work / f"corpus-{args.hours:g}h", args.hours)
    phases["corpus"] = time.perf_counter() - started
    recipe = load_training_config(REPO / args.config, corpus_overrides(corpus))
    max_duration = recipe.data.filters.max_duration
    schemes = [s for s in SCHEMES if s.name in args.schemes]

    plans: dict[tuple[int, str, bool], Path] = {}
    for s in schemes:
        key = (s.subbuckets, s.bins, s.tps_filter)
        if key not in plans:
            tps = "-tps" if s.tps_filter else ""
            name = f"plan-{args.num_buckets}x{s.subbuckets}-{s.bins}{tps}"
            plans[key] = make_plan(
                corpus,
                args.work / f"{name}.json",
                num_buckets=args.num_buckets,
                num_subbuckets=s.subbuckets,
                bins=s.bins,
                tps_max=args.tps_max if s.tps_filter else None,
                max_duration=max_duration,
                seed=recipe.train.seed,
            )
    phases["plans"] = time.perf_counter() - started - sum(phases.values())
    plan_a = plans[(1, "equal-duration", False)]
    longest = search_longest(plan_a, args.config, corpus, args.memory_budget, args.tolerance)
    phases["searches"] = time.perf_counter() - started - sum(phases.values())
    phases["training"] = 0.0
    budget_s = round(longest["batch_size"] * longest["max_duration"], 1)

    runs: dict[str, Path] = {}
    cost: dict[str, dict[str, float]] = {}
    tables: dict[str, list[dict[str, Any]]] = {}
    for s in schemes:
        plan = plans[(s.subbuckets, s.bins, s.tps_filter)]
        if s.searched:
            table = args.work / f"table-{plan.stem}.json"
            searching = time.perf_counter()
            search_table(plan, table, args.config, corpus, args.memory_budget, args.tolerance)
            phases["searches"] += time.perf_counter() - searching
            tables[s.name] = json.loads(table.read_text())["buckets"]
            batch = f"batch={{kind: table, path: {table}}}"
        else:
            batch = f"batch={{kind: duration, max_duration: {budget_s}}}"
        overrides = [*corpus_overrides(corpus), f"data.plan={plan}", batch]
        overrides += PAPER_SAMPLER if s.paper_sampler else []
        runs[s.name] = args.work / f"{s.name}"
        cost[s.name] = train(
            args.config, runs[s.name], overrides, seconds=args.minutes * 60, threads=args.threads
        )
        phases["training"] += cost[s.name]["process_wall_s"]
        if not (runs[s.name] / "metrics.jsonl").is_file():  # train.max_time counts start-up
            raise SystemExit(
                f"scheme {s.name}: no step finished in {args.minutes * 60:.0f} s, start-up "
                "included (the machine is too loaded for --minutes); rerun with more --minutes"
            )

    plots = args.work / "plots"
    if plots.exists():
        shutil.rmtree(plots)
    _, summaries = plot_runs(list(runs.values()), plots)
    png = record_path(f"{NAME}-loss", ".png", args.out_dir)
    shutil.copy(plots / "loss.png", png)

    results: dict[str, dict[str, Any]] = {}
    for s, summary in zip(schemes, summaries, strict=True):
        audio_s = summary["audio_h"] * 3600
        metrics = read_run(runs[s.name])
        results[s.name] = {
            **asdict(s),
            **summary,
            **cost[s.name],
            "plan": plan_summary(plans[(s.subbuckets, s.bins, s.tps_filter)]),
            "mean_batch_size": mean_batch(runs[s.name]),
            "audio_s_per_cpu_s": audio_s / cost[s.name]["process_cpu_s"],
            "peak_rss_mb": float(np.nanmax(metrics.values["peak_mem_mb"])),
            "batch_sizes": [b["batch_size"] for b in tables.get(s.name, [])] or None,
            "batch_audio_s": [b["batch_audio_s"] for b in tables.get(s.name, [])] or None,
        }
    a = results["A"]
    for r in results.values():
        r["batch_over_A"] = r["mean_batch_size"] / a["mean_batch_size"]
        r["throughput_over_A"] = r["audio_s_per_s"] / a["audio_s_per_s"]

    claims = paper_rows(results, budget_s)
    config = {
        "config": args.config,
        "corpus": str(corpus),
        "corpus_hours": args.hours,
        "duration_buckets": args.num_buckets,
        "memory_budget": args.memory_budget,
        "search": f"simulated probe, CPU target, fp32, tolerance {args.tolerance}",
        "duration_budget_s": budget_s,
        "tps_max": args.tps_max,
        "max_duration": max_duration,
        "minutes_per_run": round(args.minutes, 3),
        "threads": args.threads,
        "quick": args.quick,
    }
    write_json_record(
        NAME,
        {
            "command": command(),
            "config": config,
            "longest_bucket_of_A": longest,
            "results": results,
            "paper": rows_json(claims),
            "seconds": {**phases, "total": time.perf_counter() - started},
        },
        args.out_dir,
    )

    def cell(value: Any, fmt: str) -> str:
        return "-" if value is None else fmt.format(value)

    lines = [
        f"# E2(b): sampling schemes A-E in real training runs on CPU "
        f"({args.minutes * 60:.0f} s each, {time.strftime('%Y-%m-%d')})",
        "",
        f"`{command()}`",
        "",
        "Config: " + ", ".join(f"{k} {v}" for k, v in config.items()),
        "",
        f"Duration budget of A and B: {budget_s:g} s = {longest['batch_size']} x "
        f"{longest['max_duration']:g} s, the searched batch size of A's longest bucket "
        f"({longest['max_duration']:g} s, {longest['max_tokens']} tokens) within "
        f"{args.memory_budget}; the paper's {PAPER_BUDGET_S:g} s are "
        f"{PAPER_BUDGET_S / PAPER_LONGEST_S:g} x its longest {PAPER_LONGEST_S:g} s.",
        "",
        "| scheme | batches | mean batch | x A | audio pad | token pad | audio s / wall s | "
        "x A | audio s / CPU s | loss at equal wall time | steps | peak RSS (MiB) | "
        "examples kept |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in schemes:
        r = results[s.name]
        batches = (
            f"searched {min(r['batch_sizes'])}-{max(r['batch_sizes'])}"
            if r["batch_sizes"]
            else f"{budget_s:g} s"
        )
        lines.append(
            f"| {s.name}: {s.label} | {batches} | {r['mean_batch_size']:.1f} | "
            f"{r['batch_over_A']:.2f} | {cell(r['audio_padding'], '{:.1%}')} | "
            f"{cell(r['token_padding'], '{:.1%}')} | {r['audio_s_per_s']:.1f} | "
            f"{r['throughput_over_A']:.2f} | {r['audio_s_per_cpu_s']:.1f} | "
            f"{cell(r.get('loss_at_common_wall'), '{:.3f}')} | {r['steps']} | "
            f"{r['peak_rss_mb']:.0f} | {r['plan']['examples_kept']} of "
            f"{r['plan']['examples_seen']} |"
        )
    if "B" in results:
        kept = [results[n]["plan"]["examples_kept"] for n in ("A", "B")]
        seen = results["B"]["plan"]["examples_seen"]
        lines += [
            "",
            f"The TPS filter (<= {args.tps_max:g} tokens/s) drops {kept[0] - kept[1]} of the "
            f"{seen} training examples"
            + (": B samples as A does, and the gap between their rows is run-to-run variation."
               if kept[0] == kept[1] else "."),
        ]  # fmt: skip
    lines += ["", "Against the paper:", "", paper_table(claims)]
    common = summaries[0].get("common_wall_s")
    lines += [
        f"Loss at equal wall time: mean training loss over the steps ending in the last 10% of "
        f"the first {cell(common, '{:.0f}')} s of step time (the shortest run's), "
        "`padless.eval.plot_run.loss_near`. Padding: padded positions over all positions of "
        "the run's batches. Peak RSS: the training process's resident set (CPU).",
        "",
        f"Plot (plot-run's loss overlay): `{png.name}`.",
        "",
    ]
    if args.quick:
        lines += [
            f"--quick: {args.num_buckets} duration buckets instead of 30 and "
            f"{args.minutes * 60:.0f} s per run on a {args.hours:g} h corpus: a check that the "
            "experiment runs, not a measurement.",
            "",
        ]
    lines.append(environment("torch", "numpy", load_before=load_before))
    write_record(NAME, "\n".join(lines), args.out_dir)


def paper_rows(results: dict[str, dict[str, Any]], budget_s: float) -> list[PaperRow]:
    """The claims of E2 next to the paper's, each with the measurement that explains it."""

    def held(name: str) -> str:
        audio = results[name]["batch_audio_s"]
        return (
            f"{name}'s searched batches hold {min(audio):.0f}-{max(audio):.0f} s of audio "
            f"(bucket edge x batch size) against A's {budget_s:g} s budget"
        )

    rows: list[PaperRow] = []
    why_batch = (
        "the ratio is how much more audio the memory budget admits in the buckets drawn "
        "than in the longest one, which sets A's budget"
    )
    if "C" in results:
        rows.append(
            PaperRow(
                "mean batch size, C / A",
                results["C"]["batch_over_A"],
                PAPER["batch_C_over_A"],
                "x",
                note=f"{held('C')}; {why_batch}",
            )
        )
    if "D" in results:
        d = results["D"]
        bound = d["plan"]["bound_padding"]
        per_bucket = d["plan"]["examples_kept"] / d["plan"]["buckets"]
        why_pad = (
            f"D's plan bounds padding to its bucket edges at {bound['audio']:.1%} audio / "
            f"{bound['token']:.1%} tokens on this corpus ({d['plan']['examples_kept']} "
            f"examples, {per_bucket:.0f} per bucket)"
        )
        rows += [
            PaperRow(
                "mean batch size, D / A",
                d["batch_over_A"],
                PAPER["batch_D_over_A"],
                "x",
                note=f"{held('D')}; {why_batch}",
            ),
            PaperRow(
                "audio padding, D",
                d["audio_padding"],
                PAPER["D_audio_padding"],
                "%",
                1,
                note=why_pad,
            ),
            PaperRow(
                "token padding, D",
                d["token_padding"],
                PAPER["D_token_padding"],
                "%",
                1,
                note=why_pad,
            ),
        ]
    for name, r in results.items():
        if name != "A":
            rows.append(
                PaperRow(f"audio s per wall s, {name} / A", r["throughput_over_A"], None, "x")
            )
    return rows


if __name__ == "__main__":
    main()
