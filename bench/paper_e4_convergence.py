"""Paper experiment E4, convergence: random fixed-size batches against the optimized sampling,
in real training runs of the demo recipe (configs/demo-tiny.yaml: model, optimizer, schedule,
batch budget, loaded as committed) on the embedded corpus, fp32 on the CPU, the same wall time
per run, validated (dev loss, WER, BLEU) every N steps.

The paper: random fixed-size batches need about 2x the steps of the fully optimized scheme to
reach the same WER; their padding is 57% audio / 59% tokens against 4.5% / 19%.

The schemes, each the recipe with only its sampling changed:

- fixed: random fixed-size batches from one bucket, no TPS filter (the sampling sections of
  configs/fixed-batch.yaml, as overrides of the recipe). The batch size is the most
  utterances whose worst batch (all of the longest allowed, ``data.filters.max_duration``)
  fits the recipe's duration budget (``batch.max_duration``): 40 s / 20 s = 2, as a fixed size
  must be chosen for memory; ``--fixed-batch-size`` sets another;
- paper: the paper's optimized sampler (lhotse's; `SamplerConfig.paper`: random batches inside
  buckets, uniform bucket draws, strict assignment) on an equal-duration 2D plan of the
  recipe's grid, with the recipe's TPS filter and duration budget;
- padless: the recipe as it is (optimal bins, length-sorted lanes, inflow draws).

The lanes of padless remove most of the token padding but batch the same pairs of examples
together again across epochs more often than random batches (46.6% against lhotse's 6.0% on
real metadata, bench/results/2026-11-28-sampling-acceptance.md). Each run dumps its batches
(``debug.dump_batches``) and the record gives the share of its batched pairs an earlier batch
of the run already held, next to the accuracy at equal steps.

Every scheme runs with two or more seeds (``train.seed`` and ``sampler.seed`` both), seed by
seed, the runs one after the other (equal wall time, not contended by each other). Reported
per run, from RUN/metrics.jsonl and RUN/validation.jsonl (`padless.eval.plot_run`): steps,
training seconds, last and best dev loss / WER_avg / BLEU_avg, audio and token padding, audio
seconds per second, mean batch, repeated pairs; per scheme, the steps and training seconds to
reach a target dev loss and WER (the worst run's best, so every run reaches it; first crossing,
interpolated between validations): the paper's "2x the steps"; sorted (padless) against random
(paper) batches at equal steps and at equal training time, the difference of the seed means
against the seed-to-seed spread (the largest range over seeds within either scheme).

Time axis: training seconds are the cumulative step times (`RunMetrics.wall_s`); the run's
``train.max_time`` also counts start-up and the validations (more steps per second validate
more often), so "equal wall time" compares at the shortest run's last validated training
second.

Quick check: a 0.5 h corpus, 2 seeds, 16 steps per run (equal steps, not time: under load a
time limit leaves too few steps to validate), validation every 8 steps on 8 dev utterances;
a check that the experiment runs, not a measurement. Measured with 24 steps per run: 14 min 13 s
under ``nice -n 19`` while two other trainings held both cores (load average 4-5.6), 137
CPU seconds in all; once the load fell, a run took 7-10 s of wall time and the 0.5 h corpus
8.5 s. On 2 idle cores 61 s (its slow test, fresh clone):

    python bench/paper_e4_convergence.py --quick

Full run (the record's numbers): 4 h corpus, 2 seeds, 8 minutes of wall time per run,
validation every 100 steps on 48 dev utterances. About 52 minutes on 2 idle cores, an
estimate: 3 schemes x 2 seeds x (8 min + ~15 s of start-up and the last checkpoint) + ~1 min
for the corpus:

    python bench/paper_e4_convergence.py

Writes bench/results/<date>-e4-convergence.{md,json,png} (the png: plot-run's validation
overlay of every run, dev loss / WER / BLEU against steps). ``--out-dir`` and ``--work``
redirect them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from padless.eval.plot_run import RunMetrics, plot_runs, read_run
from padless.train.config import DurationBatches, load_training_config

sys.path.insert(0, str(Path(__file__).resolve().parent))  # loaded by file path (tests)
from paper import PaperRow, fill_defaults, paper_table, rows_json
from record import REPO, RESULTS, command, environment, record_path, write_json_record, write_record
from train_runs import (
    PAPER_SAMPLER,
    corpus_overrides,
    ensure_corpus,
    mean_batch,
    plan_summary,
    train,
)

NAME = "e4-convergence"
#: The paper's figures for E4.
PAPER = {
    "steps_fixed_over_optimized": 2.0,
    "fixed_audio_padding": 0.57,
    "fixed_token_padding": 0.59,
    "optimized_audio_padding": 0.045,
    "optimized_token_padding": 0.19,
}
FULL: dict[str, Any] = {
    "hours": 4.0,
    "minutes": 8.0,
    "steps": None,
    "seeds": 2,
    "every_steps": 100,
    "dev_examples": 48,
}
QUICK: dict[str, Any] = {
    "hours": 0.5,
    "minutes": None,
    "steps": 16,
    "seeds": 2,
    "every_steps": 8,
    "dev_examples": 8,
}
#: The sampling of configs/fixed-batch.yaml as overrides of the recipe (the batch size apart):
#: one bucket, random batch formation, no TPS filter, a fixed number of examples per batch.
FIXED_SAMPLING = [
    "data.estimate={num_buckets: 1, num_subbuckets: 1}",
    "data.filters.tps_max=null",
    "sampler.batching=random",
]
#: Validation metrics, whether lower is better.
METRICS = {"dev_loss": True, "wer_avg": True, "bleu_avg": False}


@dataclass(frozen=True)
class Scheme:
    """One way of sampling batches: overrides of the recipe."""

    name: str
    label: str
    overrides: tuple[str, ...]


def schemes(fixed_batch_size: int) -> list[Scheme]:
    fixed = (*FIXED_SAMPLING, f"batch={{kind: fixed, batch_size: {fixed_batch_size}}}")
    return [
        Scheme("fixed", f"random batches of {fixed_batch_size}, one bucket", fixed),
        Scheme(
            "paper",
            "paper's sampler: random batches in equal-duration buckets",
            ("data.estimate.bins=equal-duration", *PAPER_SAMPLER),
        ),
        Scheme("padless", "padless defaults: length-sorted lanes in optimal buckets", ()),
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short check (see the docstring)")
    parser.add_argument("--config", default="configs/demo-tiny.yaml")
    parser.add_argument("--hours", type=float, help=f"corpus size (full {FULL['hours']})")
    parser.add_argument("--minutes", type=float, help="wall time of each run (full 8)")
    parser.add_argument("--steps", type=int, help="steps of each run instead of --minutes")
    parser.add_argument("--seeds", type=int, help="seeds per scheme, 0, 1, ... (full 2)")
    parser.add_argument("--every-steps", type=int, help="validate every this many steps (100)")
    parser.add_argument("--dev-examples", type=int, help="dev utterances validated (48)")
    parser.add_argument("--fixed-batch-size", type=int, help="default: from the recipe's budget")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of a run")
    parser.add_argument("--corpus", type=Path, help="an existing corpus (default: made in --work)")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "paper-e4")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    if args.minutes is not None or args.steps is not None:
        preset = {**preset, "minutes": None, "steps": None}  # the one given decides
    fill_defaults(args, preset)
    if (args.minutes is None) == (args.steps is None):
        parser.error("give --minutes or --steps, not both")
    if args.seeds < 2:
        parser.error("--seeds: 2 or more (the seed-to-seed spread is what differences face)")
    return args


def fixed_batch_size(config: str, corpus: Path) -> int:
    """The most utterances whose worst batch fits the recipe's duration budget."""
    recipe = load_training_config(REPO / config, corpus_overrides(corpus))
    longest = recipe.data.filters.max_duration
    if not isinstance(recipe.batch, DurationBatches) or longest is None:
        raise SystemExit(
            f"{config}: batch.kind is not duration or data.filters.max_duration is unset; "
            "give --fixed-batch-size"
        )
    return max(1, math.floor(recipe.batch.max_duration / longest))


# ---------------------------------------------------------------------------- one run


def validation_curve(run: RunMetrics) -> list[dict[str, Any]]:
    """The run's validations with the training seconds (cumulative step time) at each."""
    wall = run.wall_s()
    out = []
    for v in run.val:
        i = int(np.searchsorted(run.steps, v["step"]))
        if i < len(run.steps) and run.steps[i] == v["step"]:
            point = {"step": int(v["step"]), "train_s": float(wall[i])}
            out.append(point | {k: v.get(k) for k in METRICS})
    return out


def repeated_pairs(dump: Path) -> float | None:
    """Share of the pairs of examples batched together in the run that an earlier batch of the
    run already held (``debug.dump_batches``: one line per step)."""
    seen: set[tuple[str, str]] = set()
    again = total = 0
    with open(dump) as f:
        for line in f:
            ids = sorted(json.loads(line)["ids"])
            for pair in itertools.combinations(ids, 2):
                total += 1
                if pair in seen:
                    again += 1
                else:
                    seen.add(pair)
    return again / total if total else None


def random_batch_padding(
    corpus: Path, max_duration: float | None, sizes: tuple[int, ...], draws: int = 4000
) -> dict[int, float]:
    """Audio padding of random batches of each size drawn from the training split's durations
    (those within ``max_duration``): how the fixed scheme's padding grows with its batch size,
    measured without training."""
    from padless.data.stream import read_manifest

    durations = np.array([e.duration for e in read_manifest(str(corpus / "train.jsonl"))])
    if max_duration is not None:
        durations = durations[durations <= max_duration]
    rng = np.random.default_rng(0)
    out = {}
    for n in sizes:
        batches = rng.choice(durations, size=(draws, n))
        out[n] = float(1 - batches.sum() / (n * batches.max(axis=1)).sum())
    return out


def best(curve: list[dict[str, Any]], key: str) -> float | None:
    values = [p[key] for p in curve if p.get(key) is not None]
    if not values:
        return None
    return min(values) if METRICS[key] else max(values)


def reach(curve: list[dict[str, Any]], key: str, target: float, axis: str) -> float | None:
    """``axis`` (step or train_s) at which the metric first reaches ``target``, interpolated
    linearly from the validation before; None if it never does."""
    sign = 1.0 if METRICS[key] else -1.0
    points = [(p[axis], sign * p[key]) for p in curve if p.get(key) is not None]
    goal = sign * target
    for i, (x, y) in enumerate(points):
        if y <= goal:
            if i == 0:
                return float(x)
            x0, y0 = points[i - 1]
            return float(x0 + (x - x0) * (y0 - goal) / (y0 - y))
    return None


def at(curve: list[dict[str, Any]], key: str, axis: str, x: float) -> float | None:
    """The metric at ``axis`` = ``x``, interpolated between validations."""
    points = [(p[axis], p[key]) for p in curve if p.get(key) is not None]
    if not points or x < points[0][0] or x > points[-1][0]:
        return None
    xs, ys = zip(*points, strict=True)
    return float(np.interp(x, xs, ys))


# ------------------------------------------------------------------------------ analysis


def steps_to_target(results: dict[str, dict[str, Any]], key: str) -> dict[str, Any] | None:
    """The target (every run's reach: the worst run's best) and each run's steps and training
    seconds to it; None without one (a WER target of 100% or more)."""
    bests = [r[f"best_{key}"] for r in results.values()]
    if any(b is None for b in bests):
        return None
    target = max(bests) if METRICS[key] else min(bests)
    if key.startswith("wer") and target >= 100:
        return None  # not one word right in the worst run: no level worth reaching
    out: dict[str, Any] = {"metric": key, "target": target, "runs": {}}
    for name, r in results.items():
        out["runs"][name] = {
            "steps": reach(r["curve"], key, target, "step"),
            "train_s": reach(r["curve"], key, target, "train_s"),
        }
    return out


def scheme_mean(values: dict[str, float | None], scheme: str) -> float | None:
    mine = [v for name, v in values.items() if name.startswith(f"{scheme}-")]
    known = [v for v in mine if v is not None]
    return float(np.mean(known)) if known and len(known) == len(mine) else None


def compare(results: dict[str, dict[str, Any]], a: str, b: str, axis: str) -> dict[str, Any] | None:
    """Scheme ``b`` against ``a`` at the largest ``axis`` value every run of both validated:
    per metric the seed values, the difference of means (b - a), the seed spread (the largest
    range over seeds within either scheme) and whether the difference exceeds it."""
    names = [n for n in results if n.split("-")[0] in (a, b)]
    ends = [r["curve"][-1][axis] for n, r in results.items() if n in names and r["curve"]]
    if len(ends) < len(names):
        return None
    x = min(ends)
    out: dict[str, Any] = {"axis": axis, "at": x, "metrics": {}}
    for key in METRICS:
        found = {n: at(results[n]["curve"], key, axis, x) for n in names}
        values = {n: v for n, v in found.items() if v is not None}
        if len(values) < len(found):
            continue
        per = {s: [v for n, v in values.items() if n.startswith(f"{s}-")] for s in (a, b)}
        means = {s: float(np.mean(v)) for s, v in per.items()}
        spread = max(max(v) - min(v) for v in per.values())
        diff = means[b] - means[a]
        out["metrics"][key] = {
            "values": values,
            "means": means,
            "difference": diff,
            "spread": spread,
            "beyond_spread": abs(diff) > spread,
        }
    return out


# -------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    load_before = os.getloadavg()
    started = time.perf_counter()
    corpus = args.corpus or ensure_corpus(args.work / f"corpus-{args.hours:g}h", args.hours)
    corpus_s = time.perf_counter() - started
    batch_size = args.fixed_batch_size or fixed_batch_size(args.config, corpus)
    chosen = schemes(batch_size)
    seeds = list(range(args.seeds))
    shared = [
        *corpus_overrides(corpus),
        f"data.dev={corpus / 'dev.jsonl'}",
        f"validation.every_steps={args.every_steps}",
        f"validation.max_examples={args.dev_examples}",
        "checkpoint.keep_best=false",
    ]
    runs: dict[str, Path] = {}
    cost: dict[str, dict[str, float]] = {}
    for seed in seeds:  # seed by seed: a change of load over time hits every scheme alike
        for s in chosen:
            name = f"{s.name}-s{seed}"
            run = runs[name] = args.work / name
            overrides = [
                *shared,
                f"train.seed={seed}",
                f"sampler.seed={seed}",
                f"debug.dump_batches={run / 'batches.jsonl'}",
                *s.overrides,
            ]
            seconds = None if args.minutes is None else args.minutes * 60
            cost[name] = train(
                args.config, run, overrides, seconds=seconds, steps=args.steps, threads=args.threads
            )
            if not (run / "metrics.jsonl").is_file() or not (run / "validation.jsonl").is_file():
                raise SystemExit(
                    f"{name}: no step or no validation in {args.minutes} min, start-up included "
                    "(the machine is too loaded); rerun with more --minutes or fewer "
                    "--every-steps"
                )
    training_s = sum(c["process_wall_s"] for c in cost.values())
    runs = {n: runs[n] for s in chosen for n in runs if n.startswith(f"{s.name}-")}  # by scheme

    plots = args.work / "plots"
    if plots.exists():
        shutil.rmtree(plots)
    _, summaries = plot_runs(list(runs.values()), plots)
    png = record_path(NAME, ".png", args.out_dir)
    shutil.copy(plots / "validation.png", png)

    results: dict[str, dict[str, Any]] = {}
    for (name, run), summary in zip(runs.items(), summaries, strict=True):
        curve = validation_curve(read_run(run))
        results[name] = {
            "scheme": name.split("-")[0],
            **summary,
            **cost[name],
            "plan": plan_summary(run / "plan.json"),
            "mean_batch_size": mean_batch(run),
            "audio_s_per_step": summary["audio_h"] * 3600 / summary["steps"],
            "repeated_pairs": repeated_pairs(run / "batches.jsonl"),
            "curve": curve,
            **{f"last_{k}": curve[-1][k] if curve else None for k in METRICS},
            **{f"best_{k}": best(curve, k) for k in METRICS},
        }
    targets = {k: steps_to_target(results, k) for k in ("dev_loss", "wer_avg")}
    sorted_vs_random = {
        axis: compare(results, "paper", "padless", axis) for axis in ("step", "train_s")
    }
    recipe = load_training_config(REPO / args.config, corpus_overrides(corpus))
    sizes = tuple(sorted({batch_size, 8, 16, 32}))
    fixed_padding = random_batch_padding(corpus, recipe.data.filters.max_duration, sizes)
    claims = paper_rows(results, targets, fixed_padding)
    config = {
        "config": args.config,
        "corpus": str(corpus),
        "corpus_hours": args.hours,
        "seeds": args.seeds,
        "minutes_per_run": args.minutes,
        "steps_per_run": args.steps,
        "validation_every_steps": args.every_steps,
        "dev_examples": args.dev_examples,
        "fixed_batch_size": batch_size,
        "threads": args.threads,
        "quick": args.quick,
    }
    seconds = {"corpus": corpus_s, "training": training_s}
    seconds["total"] = time.perf_counter() - started
    write_json_record(
        NAME,
        {
            "command": command(),
            "config": config,
            "schemes": {s.name: {"label": s.label, "overrides": list(s.overrides)} for s in chosen},
            "results": results,
            "targets": targets,
            "sorted_vs_random": sorted_vs_random,
            "random_batch_audio_padding": fixed_padding,
            "paper": rows_json(claims),
            "seconds": seconds,
        },
        args.out_dir,
    )
    text = render(args, config, chosen, results, targets, sorted_vs_random, claims, png)
    text += "\n" + environment("torch", "numpy", load_before=load_before)
    write_record(NAME, text, args.out_dir)


def scheme_value(results: dict[str, dict[str, Any]], scheme: str, key: str) -> float | None:
    return scheme_mean({n: r[key] for n, r in results.items()}, scheme)


def target_ratio(target: dict[str, Any] | None, a: str, b: str, axis: str) -> float | None:
    """Mean over seeds of scheme ``a``'s ``axis`` to the target over ``b``'s."""
    if target is None:
        return None
    values = {n: r[axis] for n, r in target["runs"].items()}
    mean_a, mean_b = scheme_mean(values, a), scheme_mean(values, b)
    return None if mean_a is None or not mean_b else mean_a / mean_b


def paper_rows(
    results: dict[str, dict[str, Any]],
    targets: dict[str, dict[str, Any] | None],
    fixed_padding: dict[int, float],
) -> list[PaperRow]:
    """The claims of E4 next to the paper's, each with the measurement that explains it."""
    audio = {s: scheme_value(results, s, "audio_s_per_step") for s in ("fixed", "paper")}
    batch = {s: scheme_value(results, s, "mean_batch_size") for s in ("fixed", "paper")}
    fixed_n = next(r["mean_batch_size"] for r in results.values() if r["scheme"] == "fixed")
    ratio = (audio["paper"] or 0) / (audio["fixed"] or 1)
    why_steps = (
        f"per step a fixed batch holds {audio['fixed'] or 0:.1f} s of audio against the paper "
        f"sampler's {audio['paper'] or 0:.1f} s ({ratio:.1f}x less; {batch['fixed'] or 0:.1f} "
        f"against {batch['paper'] or 0:.1f} utterances), set by the recipe's duration budget "
        "and the fixed size whose longest batch fits it"
    )
    grows = ", ".join(f"{n}: {p:.1%}" for n, p in fixed_padding.items())
    fixed_pad = {w: scheme_value(results, "fixed", f"{w}_padding") or 0 for w in ("audio", "token")}
    why_fixed_pad = (
        f"a random batch pads to the longest of its {fixed_n:.0f} utterances, and the fewer "
        "per batch the less padding: random batches drawn from this corpus's training "
        f"durations pad their audio by {grows} (batch size: padding); the fixed runs' token "
        f"padding follows their audio padding ({fixed_pad['token']:.1%} against "
        f"{fixed_pad['audio']:.1%})"
    )
    rows = [
        PaperRow(
            "steps to the target dev loss, fixed / paper sampler",
            target_ratio(targets["dev_loss"], "fixed", "paper", "steps"),
            PAPER["steps_fixed_over_optimized"],
            "x",
            note=why_steps,
        ),
        PaperRow(
            "steps to the target WER, fixed / paper sampler",
            target_ratio(targets["wer_avg"], "fixed", "paper", "steps"),
            PAPER["steps_fixed_over_optimized"],
            "x",
            note=why_steps,
        ),
        PaperRow(
            "steps to the target dev loss, fixed / padless",
            target_ratio(targets["dev_loss"], "fixed", "padless", "steps"),
            None,
            "x",
        ),
        PaperRow(
            "training s to the target dev loss, fixed / paper sampler",
            target_ratio(targets["dev_loss"], "fixed", "paper", "train_s"),
            None,
            "x",
        ),
    ]
    for scheme, paper_key in (("fixed", "fixed"), ("paper", "optimized"), ("padless", None)):
        for what in ("audio", "token"):
            ours = scheme_value(results, scheme, f"{what}_padding")
            plan = next(r["plan"] for r in results.values() if r["scheme"] == scheme)
            note = (
                why_fixed_pad
                if scheme == "fixed"
                else f"the run's plan bounds padding to its bucket edges at "
                f"{plan['bound_padding'][what]:.1%} {what} on this corpus "
                f"({plan['examples_kept']} examples, {plan['buckets']} buckets)"
            )
            rows.append(
                PaperRow(
                    f"{what} padding, {scheme}",
                    ours,
                    PAPER[f"{paper_key}_{what}_padding"] if paper_key else None,
                    "%",
                    1,
                    note=note,
                )
            )
    return rows


# ------------------------------------------------------------------------------- record


def cell(value: Any, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def render(
    args: argparse.Namespace,
    config: dict[str, Any],
    chosen: list[Scheme],
    results: dict[str, dict[str, Any]],
    targets: dict[str, dict[str, Any] | None],
    sorted_vs_random: dict[str, dict[str, Any] | None],
    claims: list[PaperRow],
    png: Path,
) -> str:
    limit = f"{args.minutes:g} min" if args.minutes is not None else f"{args.steps} steps"
    lines = [
        f"# E4: convergence, fixed-size against optimized batches ({limit} per run, "
        f"{args.seeds} seeds, {time.strftime('%Y-%m-%d')})",
        "",
        f"`{command()}`",
        "",
        "Config: " + ", ".join(f"{k} {v}" for k, v in config.items()),
        "",
        "Schemes (overrides of the recipe):",
        "",
    ]
    lines += [f"- {s.name}: {s.label} (`{' '.join(s.overrides) or 'none'}`)" for s in chosen]
    lines += [
        "",
        "| run | steps | training s | other s | dev loss last / best | WER_avg last / best | "
        "BLEU_avg last / best | audio pad | token pad | audio s / s | mean batch | "
        "audio s / step | pairs again |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['steps']} | {r['wall_s']:.0f} | "
            f"{r['process_wall_s'] - r['wall_s']:.0f} | "
            f"{cell(r['last_dev_loss'], '{:.3f}')} / {cell(r['best_dev_loss'], '{:.3f}')} | "
            f"{cell(r['last_wer_avg'], '{:.1f}')} / {cell(r['best_wer_avg'], '{:.1f}')} | "
            f"{cell(r['last_bleu_avg'], '{:.1f}')} / {cell(r['best_bleu_avg'], '{:.1f}')} | "
            f"{cell(r['audio_padding'], '{:.1%}')} | {cell(r['token_padding'], '{:.1%}')} | "
            f"{cell(r['audio_s_per_s'], '{:.1f}')} | {r['mean_batch_size']:.1f} | "
            f"{r['audio_s_per_step']:.1f} | {cell(r['repeated_pairs'], '{:.1%}')} |"
        )
    lines += [
        "",
        "Training s: cumulative step time; other s: the rest of the run's wall time (start-up, "
        "validations, the last checkpoint), which a run that steps faster spends more of, "
        "validating more often. Pairs again: "
        "share of the run's batched pairs of examples that an earlier batch of the run held.",
        "",
        "## Steps to a target",
        "",
        "Target: the worst run's best value, so every run reaches it; the step (and training "
        "second) of the first validation at or past it, interpolated from the one before.",
        "",
        "| metric | target | " + " | ".join(results) + " |",
        "|---|---:|" + "---:|" * len(results),
    ]
    for key, target in targets.items():
        if target is None:
            why = "none: the worst run's best is 100% or more" if key.startswith("wer") else "-"
            lines.append(f"| {key} | {why} |" + " - |" * len(results))
            continue
        cells = [
            f"{cell(t['steps'], '{:.0f}')} ({cell(t['train_s'], '{:.0f}')} s)"
            for t in target["runs"].values()
        ]
        lines.append(f"| {key} | {target['target']:.3f} | " + " | ".join(cells) + " |")
    lines += ["", "## Sorted (padless) against random (paper) batches", ""]
    for axis, comp in sorted_vs_random.items():
        where = "equal steps" if axis == "step" else "equal training time"
        if comp is None or not comp["metrics"]:
            lines += [f"At {where}: no common validation point.", ""]
            continue
        unit = "" if axis == "step" else " s"
        lines += [
            f"At {where} ({comp['at']:.0f}{unit}, interpolated between validations):",
            "",
            "| metric | paper (seeds) | padless (seeds) | padless - paper | seed spread | "
            "beyond the spread |",
            "|---|---|---|---:|---:|---|",
        ]
        for key, m in comp["metrics"].items():
            per = {
                s: ", ".join(f"{v:.3f}" for n, v in m["values"].items() if n.startswith(f"{s}-"))
                for s in ("paper", "padless")
            }
            lines.append(
                f"| {key} | {per['paper']} | {per['padless']} | {m['difference']:+.3f} | "
                f"{m['spread']:.3f} | {'yes' if m['beyond_spread'] else 'no'} |"
            )
        lines.append("")
    lines += [
        "Seed spread: the largest range over seeds within either scheme; with two seeds a "
        "rough bar, not a confidence interval.",
        "",
        "## Validation curves (step: dev loss / WER_avg / BLEU_avg, training s)",
        "",
    ]
    for name, r in results.items():
        points = "; ".join(
            f"{p['step']}: {cell(p['dev_loss'], '{:.2f}')} / {cell(p['wer_avg'], '{:.0f}')} / "
            f"{cell(p['bleu_avg'], '{:.1f}')} ({p['train_s']:.0f} s)"
            for p in r["curve"]
        )
        lines.append(f"- {name}: {points}")
    lines += [
        "",
        "## Against the paper",
        "",
        paper_table(claims),
        f"Plot (plot-run's validation overlay, against steps): `{png.name}`.",
        "",
    ]
    if args.quick:
        lines += [
            f"--quick: {limit} per run on a {args.hours:g} h corpus, {args.dev_examples} dev "
            "utterances: a check that the experiment runs, not a measurement.",
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
