"""Acceptance run of the batch-size search: Canary-1B, bf16, 80 GiB, simulated, on 30x1 and 30x2
plans estimated from the shared real metadata, compared with the 360 s duration heuristic.

    python bench/bench_oomptimizer.py --real-dir ../shared/data/real --work-dir /tmp/oomptimizer \
        --model canary-1b --budget 80GiB --dtype bf16 --workers 2

Steps (each command is written into the record):

1. ``python bench/datasets.py real``: tokenized manifest of the real metadata (Canary tokenizer,
   num_tokens = 5-token prompt + text + EOS).
2. ``padless plan``: 30 duration bins, 0.5-40 s, equal cumulative duration (the paper's Canary-1B
   setup), TPS filter 25; once 1D (30x1), once with 2 token sub-bins (30x2).
3. The search on each plan, timed end to end (model build, simulated steps, replays). The
   paper's ratios: x3.4 (1D search vs 1D heuristic) and x5 (30x2 search vs the 1D heuristic).
4. ``--check N``: for N buckets, a direct simulated step at the chosen batch size, compared with
   the trace replay the search used.

Writes ``bench/results/<date>-oomptimizer-<model>.{md,json}`` and a plot per plan.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from padless.batchsize import format_bytes, parse_size
from padless.batchsize.report import plot
from padless.batchsize.run import OomptimizeConfig, Outcome, open_probe, search_plan
from padless.batchsize.search import SearchConfig, search
from padless.batchsize.simulate import SimulateConfig, SimulateProbe
from padless.batchsize.table import bucket_shapes, read_plan
from padless.batchsize.workload import StepConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import (  # bench/record.py
    REPO,
    RESULTS,
    command,
    environment,
    environment_info,
    record_path,
    today,
    write_json_record,
    write_record,
)

PAPER = {"30x1": 3.4, "30x2": 5.0}


def sh(cmd: list[str]) -> str:
    """Run a command from the repo root; return it as a shell line for the record."""
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return " ".join(cmd)


def check_replays(probe: SimulateProbe, outcome: Outcome, count: int) -> list[dict[str, Any]]:
    """Direct simulated steps at the chosen sizes of ``count`` buckets vs their replays."""
    results = list(outcome.result.buckets)
    picks = [results[i] for i in sorted({len(results) - 1, len(results) // 2, 0})][:count]
    rows = []
    for r in picks:
        replay = probe.replay(r.shape, r.batch_size)
        direct = probe.direct(r.shape, r.batch_size)
        rows.append(
            {
                "bucket": r.shape.index,
                "batch_size": r.batch_size,
                "replay_live_bytes": replay.peak_live,
                "direct_live_bytes": direct.peak_live,
                "replay_reserved_bytes": replay.peak_reserved,
                "direct_reserved_bytes": direct.peak_reserved,
            }
        )
    return rows


def ablation(probe: SimulateProbe, plan: Path, outcome: Outcome) -> list[dict[str, Any]]:
    """The search again on the cached traces, without its shortcuts: trials and answers."""
    shapes = bucket_shapes(read_plan(plan))
    reference = [r.max_fitting for r in outcome.result.buckets]
    rows = []
    for affine, monotone in ((True, True), (True, False), (False, True), (False, False)):
        config = SearchConfig(affine=affine, monotone=monotone, verify_chosen=False)
        start = time.perf_counter()
        result = search(shapes, probe, config)
        sizes = [r.max_fitting for r in result.buckets]
        rows.append(
            {
                "affine": affine,
                "monotone": monotone,
                "trials": result.num_trials,
                "seconds": round(time.perf_counter() - start, 1),
                "max_deviation_from_default": max(
                    abs(a / b - 1) for a, b in zip(sizes, reference, strict=True)
                ),
            }
        )
        print(rows[-1], flush=True)
    return rows


def table_md(outcome: Outcome) -> list[str]:
    c = outcome.comparison
    lines = [
        "| bucket | max duration (s) | max tokens | batch size | 360 s heuristic | peak memory "
        "| batch audio (s) | trials |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r, h in zip(outcome.result.buckets, c.heuristic_batch_sizes, strict=True):
        lines.append(
            f"| {r.shape.index} | {r.shape.max_duration:.2f} | {r.shape.max_tokens} "
            f"| {r.batch_size} | {h} | {format_bytes(r.peak_bytes)} "
            f"| {r.batch_audio_seconds:.0f} | {len(r.trials)} |"
        )
    return lines


def main(
    real_dir: Annotated[Path, typer.Option(help="Shared real metadata folder.")],
    work_dir: Annotated[Path, typer.Option(help="Scratch folder for manifest and plans.")],
    model: str = "canary-1b",
    budget: str = "80GiB",
    dtype: str = "bf16",
    workers: int = 2,
    check: Annotated[int, typer.Option(help="Buckets to check replay vs direct.")] = 2,
    ablate: Annotated[bool, typer.Option(help="Rerun the 30x1 search without shortcuts.")] = True,
    out_dir: Path = RESULTS,
) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    manifest = work_dir / "real.jsonl"
    commands = [
        sh(
            [
                sys.executable,
                "bench/datasets.py",
                "real",
                "--real-dir",
                str(real_dir),
                "--work-dir",
                str(work_dir),
                "--out",
                str(manifest),
            ]
        )
    ]
    plans = {}
    for name, sub in (("30x1", 1), ("30x2", 2)):
        plans[name] = work_dir / f"plan{name}.json"
        commands.append(
            sh(
                [
                    "padless",
                    "plan",
                    str(manifest),
                    "--out",
                    str(plans[name]),
                    "--num-buckets",
                    "30",
                    "--num-subbuckets",
                    str(sub),
                    "--bins",
                    "equal-duration",
                    "--min-duration",
                    "0.5",
                    "--max-duration",
                    "40",
                    "--tps-max",
                    "25",
                ]
            )
        )
    step = StepConfig(precision=dtype)  # type: ignore[arg-type]
    config = OomptimizeConfig(
        model=model,
        probe="simulate",
        budget_bytes=parse_size(budget),
        step=step,
        search=SearchConfig(),
        simulate=SimulateConfig(workers=workers),
    )
    date = today()
    runs: dict[str, Any] = {}
    outcomes: dict[str, Outcome] = {}
    checks: list[dict[str, Any]] = []
    ablations: list[dict[str, Any]] = []
    for name, plan_path in plans.items():
        load_before = os.getloadavg()
        start = time.perf_counter()
        with open_probe(config) as probe:
            outcome = search_plan(plan_path, probe, config)
            wall = time.perf_counter() - start
            assert isinstance(probe, SimulateProbe)
            if name == "30x1":
                ablations = ablation(probe, plan_path, outcome) if ablate else []
                checks = check_replays(probe, outcome, check) if check else []
        outcomes[name] = outcome
        png = record_path(f"oomptimizer-{model}-{name}", ".png", out_dir)
        title = f"{model} {dtype} {budget} simulated, plan {name}"
        results = list(outcome.result.buckets)
        plot(outcome.buckets, results, outcome.comparison, outcome.budget_bytes, str(png), title)
        runs[name] = {
            "command": (
                f"padless oomptimize --model {model} --plan {plan_path} --probe simulate "
                f"--memory-budget {budget} --dtype {dtype} --workers {workers} --out table.json"
            ),
            "wall_seconds": round(wall, 1),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "table": outcome.document,
            "plot": png.name,
        }
        print(f"{name}: {wall:.0f} s, x{outcome.comparison.batch_size_ratio:.2f}", flush=True)
    # The paper's 5x compares the 30x2 search with the 1D (30x1) heuristic baseline.
    base = outcomes["30x1"].comparison.heuristic
    two_d = outcomes["30x2"].comparison.searched
    vs_1d_baseline = two_d.mean_batch_size / base.mean_batch_size
    record = {
        "date": date,
        "commands": commands,
        "command": command(),
        "config": {"model": model, "budget": budget, "dtype": dtype, "workers": workers},
        "machine": environment_info("torch", "numpy"),
        "runs": runs,
        "ratio_30x2_vs_30x1_heuristic": vs_1d_baseline,
        "replay_checks": checks,
        "ablation_30x1": ablations,
    }
    write_json_record(f"oomptimizer-{model}", record, out_dir)
    md = [
        f"# Batch-size search: {model}, {dtype}, {budget}, simulated ({date})",
        "",
        f"Command: `{record['command']}`",
        "",
        "Setup commands:",
        "",
        *[f"    {c}" for c in commands],
        "",
        "## Mean batch size per training step vs the 360 s heuristic",
        "",
        "| plan | search mean batch | heuristic mean batch | ratio | paper | mean batch audio "
        "(search / heuristic) | wall time | buckets | trials | simulated steps |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, outcome in outcomes.items():
        c = outcome.comparison
        doc = outcome.document
        md.append(
            f"| {name} | {c.searched.mean_batch_size:.1f} | {c.heuristic.mean_batch_size:.1f} "
            f"| x{c.batch_size_ratio:.2f} | x{PAPER[name]} "
            f"| {c.searched.mean_batch_audio_s:.0f} s / {c.heuristic.mean_batch_audio_s:.0f} s "
            f"| {runs[name]['wall_seconds']:.0f} s | {len(outcome.buckets)} "
            f"| {outcome.result.num_trials} | {doc['steps_simulated']} |"
        )
    md += [
        "",
        f"30x2 search vs the 30x1 heuristic (the paper's x5 baseline): x{vs_1d_baseline:.2f}.",
        "Weighting: each bucket by its share of training steps from the plan sample's occupancy.",
        "",
    ]
    for name, outcome in outcomes.items():
        md += [f"## Table, plan {name}", "", f"![{name}]({runs[name]['plot']})", ""]
        md += [*table_md(outcome), ""]
    if ablations:
        md += [
            "## Search shortcuts (30x1, same traces, replays only)",
            "",
            "| affine prediction | monotone bounds | trials | seconds | max deviation |",
            "|---|---|---:|---:|---:|",
        ]
        md += [
            f"| {a['affine']} | {a['monotone']} | {a['trials']} | {a['seconds']} "
            f"| {100 * a['max_deviation_from_default']:.1f}% |"
            for a in ablations
        ]
        md.append("")
    if checks:
        md += ["## Replay vs direct simulated step", "", "```", json.dumps(checks, indent=1), "```"]
        md.append("")
    md.append(environment(info=record["machine"]))
    write_record(f"oomptimizer-{model}", "\n".join(md), out_dir)


if __name__ == "__main__":
    typer.run(main)
