"""The sampling engine's acceptance measurements (issue 4), side by side with lhotse 1.33.

    python bench/datasets.py canary-mix --n 1000000 --seed 0 --out /tmp/canary-1m.jsonl
    python bench/datasets.py real --real-dir ../shared/data/real --work-dir /tmp/work \\
        --out /tmp/real.jsonl
    python bench/bench_sampling_acceptance.py --canary /tmp/canary-1m.jsonl --real /tmp/real.jsonl

Every figure comes from `padless bench-sampler ... --json` (the command users run) in a fresh
process, except the shuffle-quality figures, which need two runs' batches side by side and use
the library directly. Sections (``--sections``, default all):

- ``padding``: one rank, 360 s budget, TPS <= 25, 0.5-40 s. The paper's sampler (equal-duration
  30x2 plan, random batches, uniform draws, strict, 20k buffer) and lhotse on it, next to
  padless's defaults with 60 buckets (padding-optimal 1D bins, sorted batches, inflow draws,
  flexible, buffer from the plan) and lhotse on that plan and buffer; then the bins alone at 60
  buckets (equal vs optimal, 1D 60 and 2D 30x2, random and sorted batches).
- ``sync``: 8 ranks with their own data, 20k buffer, 2D 30x2: share of steps where all ranks used
  the same bucket, per tenth of the epoch, and the per-step spread of the longest example
  across ranks; padless sync / no sync / lhotse.
- ``speed``: 1D 30 buckets, 360 s, the 1M manifest in memory: examples/s of padless and lhotse.
- ``first-batch``: time to the first batch streaming the 1M manifest, concurrent reader or not.
- ``rss``: peak RSS streaming the 1M manifest with a 20k buffer (fresh process).
- ``resume``: state save + restore time and size early and late in an epoch.
- ``shuffle``: randomness kept: how often two examples batched together are batched together
  again next epoch or under another seed, and the rank correlation of input and output order.

Writes ``bench/results/<date>-sampling-acceptance.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import (  # bench/record.py
    RESULTS,
    command,
    environment,
    environment_info,
    record_path,
    today,
    write_json_record,
    write_record,
)

FILTERS = ["--tps-max", "25", "--min-duration", "0.5", "--max-duration", "40"]
SECTIONS = ("padding", "sync", "speed", "first-batch", "rss", "resume", "shuffle")
NAME = "sampling-acceptance"
#: Versions the record lists besides python and padless: what the compared samplers run on.
PACKAGES = ("numpy", "lhotse")


def padless(*args: str, timeout: float = 3600) -> dict[str, Any]:
    """Run `padless ...` in a fresh process; parse the --json line when there is one."""
    cmd = [sys.executable, "-m", "padless", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = {}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if lines:
        out = json.loads(lines[-1])
    out["_command"] = "padless " + " ".join(args)
    out["_wall_s"] = round(time.perf_counter() - t0, 1)
    print(f"  {out['_wall_s']:7.1f} s  {out['_command']}", flush=True)
    return out


def bench(*args: str) -> dict[str, Any]:
    return padless("bench-sampler", *args)


def make_plan(manifest: str, out: Path, buckets: int, subbuckets: int, bins: str) -> str:
    if not out.exists():
        padless(
            "plan",
            manifest,
            "--num-buckets",
            str(buckets),
            "--num-subbuckets",
            str(subbuckets),
            "--bins",
            bins,
            *FILTERS,
            "--out",
            str(out),
        )
    return str(out)


def slim(run: dict[str, Any]) -> dict[str, Any]:
    """A run without its per-bucket list (kept for the headline runs only)."""
    return {k: v for k, v in run.items() if k != "per_bucket"}


# ------------------------------------------------------------------------------------- sections


def section_padding(data: dict[str, str], work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, manifest in data.items():
        paper_plan = make_plan(
            manifest, work / f"{name}-equal-duration-30x2.json", 30, 2, "equal-duration"
        )
        plan_60 = make_plan(manifest, work / f"{name}-optimal-60x1.json", 60, 1, "optimal")
        plan_2d = make_plan(manifest, work / f"{name}-optimal-30x2.json", 30, 2, "optimal")
        base = [manifest, "--batch-duration", "360"]
        peer = ["--compare", "lhotse", "--no-lhotse-rss"]
        runs = {
            "paper mode (lhotse-like), equal-duration 30x2, 20k buffer": bench(
                *base, "--plan", paper_plan, "--paper", "--buffer-size", "20000", *peer, "--json"
            ),
            "default, optimal 60 buckets (1D)": bench(*base, "--plan", plan_60, *peer, "--json"),
            "default, optimal 30x2": bench(*base, "--plan", plan_2d, "--json"),
            "default, optimal 60 buckets, 20k buffer": bench(
                *base, "--plan", plan_60, "--buffer-size", "20000", "--json"
            ),
        }
        bins: dict[str, Any] = {}
        for shape, (k, s) in {"1D 60": (60, 1), "2D 30x2": (30, 2)}.items():
            for est in ("equal-duration", "optimal"):
                plan = make_plan(manifest, work / f"{name}-{est}-{k}x{s}.json", k, s, est)
                bound = json.loads(Path(plan).read_text())["expected_padding"]
                entry = {"pad_to_edge_bound": bound}
                for batching in ("random", "sorted"):
                    r = bench(*base, "--plan", plan, "--batching", batching, "--json")
                    entry[batching] = {
                        "audio_padding": r["audio_padding"],
                        "token_padding": r["token_padding"],
                    }
                bins[f"{shape} {est}"] = entry
        out[name] = {"runs": {k: slim(v) for k, v in runs.items()}, "bins_at_60": bins}
        out[name]["per_bucket_default"] = runs["default, optimal 60 buckets (1D)"]["per_bucket"]
    return out


def section_sync(canary: str, work: Path) -> dict[str, Any]:
    plan = make_plan(canary, work / "canary-equal-duration-30x2.json", 30, 2, "equal-duration")
    plan_60 = make_plan(canary, work / "canary-optimal-60x1.json", 60, 1, "optimal")
    base = [canary, "--batch-duration", "360", "--buffer-size", "20000", "--world-size", "8"]
    return {
        "padless sync (default: inflow draws, joint drain)": slim(
            bench(*base, "--plan", plan, "--compare", "lhotse", "--no-lhotse-rss", "--json")
        ),
        "padless sync, uniform draws": slim(
            bench(*base, "--plan", plan, "--bucket-draw", "uniform", "--json")
        ),
        "padless no sync": slim(bench(*base, "--plan", plan, "--no-sync", "--json")),
        "padless defaults, optimal 60 buckets (1D)": slim(
            bench(*base, "--plan", plan_60, "--json")
        ),
    }


def section_speed(canary: str, work: Path, reps: int) -> dict[str, Any]:
    plan = make_plan(canary, work / "canary-equal-30x1.json", 30, 1, "equal-duration")
    base = [
        canary,
        "--plan",
        plan,
        "--batch-duration",
        "360",
        "--buffer-size",
        "20000",
        "--preload",
    ]
    runs = []
    for _ in range(reps):
        runs.append(slim(bench(*base, "--compare", "lhotse", "--no-lhotse-rss", "--json")))
        runs.append(slim(bench(*base, "--paper", "--json")))
    return {"runs": runs, "cpu": cpu_time_ab(canary, plan, reps + 1)}


def cpu_time_ab(manifest: str, plan_path: str, reps: int) -> dict[str, Any]:
    """Examples per CPU second of padless and of lhotse's DynamicBucketingSampler, alternating
    in one process on the same examples (CPU time is less disturbed by other jobs than wall
    time). lhotse gets MonoCuts with a minimal Recording, built before timing."""
    from lhotse import CutSet, MonoCut, Recording
    from lhotse.dataset.sampling.dynamic_bucketing import DynamicBucketingSampler as LhotseSampler

    from padless.data.stream import ExampleStream
    from padless.sampling.config import SamplerConfig
    from padless.sampling.plan import BucketPlan
    from padless.sampling.policies import DurationBudget
    from padless.sampling.sampler import DynamicBucketingSampler
    from padless.sampling.sources import ExampleList

    plan = BucketPlan.load(plan_path)
    f = plan.filters
    examples = [
        e
        for e in ExampleStream([manifest], shuffle=True, seed=0, require_text=False).open(0)
        if f.min_duration <= e.duration <= f.max_duration and e.num_tokens / e.duration <= f.tps_max
    ]
    recording = Recording(
        id="r", sources=[], sampling_rate=16000, num_samples=16000 * 100, duration=100.0
    )
    cuts = CutSet.from_cuts(
        [
            MonoCut(id=e.id, start=0.0, duration=e.duration, channel=0, recording=recording)
            for e in examples
        ]
    )
    edges = [float(x) for x in plan.duration_edges[:-1]]

    def ours(config: SamplerConfig) -> float:
        sampler = DynamicBucketingSampler(
            ExampleList(examples), plan, DurationBudget(360.0), config
        )
        t0 = time.process_time()
        n = sum(len(b) for b in sampler)
        return n / (time.process_time() - t0)

    def theirs() -> float:
        sampler = LhotseSampler(
            cuts, max_duration=360.0, duration_bins=edges, buffer_size=20_000, shuffle=True, seed=0
        )
        t0 = time.process_time()
        n = sum(len(b) for b in sampler)
        return n / (time.process_time() - t0)

    out: dict[str, list[float]] = {"padless default": [], "padless paper mode": [], "lhotse": []}
    for _ in range(reps):
        out["padless default"].append(round(ours(SamplerConfig(buffer_size=20_000))))
        out["padless paper mode"].append(round(ours(SamplerConfig.paper(buffer_size=20_000))))
        out["lhotse"].append(round(theirs()))
    return {"examples": len(examples), **out}


def section_first_batch(canary: str, work: Path, reps: int) -> dict[str, Any]:
    plan = make_plan(canary, work / "canary-optimal-30x2.json", 30, 2, "optimal")
    out: dict[str, list[float]] = {"concurrent": [], "in line": []}
    for _ in range(reps):
        for label, flag in (("concurrent", ["--concurrent"]), ("in line", [])):
            r = bench(
                canary,
                "--plan",
                plan,
                "--batch-duration",
                "360",
                "--buffer-size",
                "20000",
                *flag,
                "--json",
            )
            out[label].append(r["first_batch_s"])
    return out


def section_rss(canary: str, work: Path) -> dict[str, Any]:
    plan = make_plan(canary, work / "canary-optimal-30x2.json", 30, 2, "optimal")
    base = [canary, "--plan", plan, "--batch-duration", "360", "--buffer-size", "20000"]
    ours = bench(*base, "--json")
    ours_conc = bench(*base, "--concurrent", "--json")
    # lhotse streaming its cuts (lazy) in a fresh process; our own RSS in that run includes
    # every example read into memory for the peer, so it is not reported from there.
    peer = bench(*base, "--compare", "lhotse", "--json")
    return {
        "padless": {k: ours[k] for k in ("peak_rss_mb", "baseline_rss_mb", "examples")},
        "padless concurrent": {
            k: ours_conc[k] for k in ("peak_rss_mb", "baseline_rss_mb", "examples")
        },
        "lhotse lazy cuts": {
            k: peer["lhotse"][k] for k in ("peak_rss_mb", "peak_rss_over_baseline_mb")
        },
    }


def section_resume(canary: str, work: Path) -> dict[str, Any]:
    plan = make_plan(canary, work / "canary-optimal-30x2.json", 30, 2, "optimal")
    base = [canary, "--plan", plan, "--batch-duration", "360", "--buffer-size", "20000"]
    steps = bench(*base, "--json")["batches"][0]
    out = {}
    for step in (10, steps // 2, steps - 50):
        r = bench(*base, "--resume-from-step", str(step), "--json")
        out[str(step)] = {**r["resume"], "steps_in_epoch": r["batches"][0]}
    return out


def section_shuffle(data: dict[str, str], work: Path) -> dict[str, Any]:
    """Randomness kept by each sampler (one rank, 360 s): how often examples batched together
    in epoch 0 share a batch again in epoch 1 (the stream's block shuffle changes the input order)
    and under another sampler seed with the same input order; and input/output order figures."""
    from padless.data.stream import ExampleStream
    from padless.sampling.config import SortedBatching
    from padless.sampling.plan import BucketPlan

    out: dict[str, Any] = {}
    for name, manifest in data.items():
        stream = ExampleStream([manifest], shuffle=True, seed=0, require_text=False)
        epochs = [list(stream.open(e)) for e in (0, 1)]
        position = {e.id: i for i, e in enumerate(epochs[0])}
        paper = BucketPlan.load(
            make_plan(manifest, work / f"{name}-equal-duration-30x2.json", 30, 2, "equal-duration")
        )
        best = BucketPlan.load(
            make_plan(manifest, work / f"{name}-optimal-60x1.json", 60, 1, "optimal")
        )
        runs = {
            "lhotse (equal-duration 30x2, 20k buffer)": ("lhotse", paper, {}),
            "padless paper mode (equal-duration 30x2, 20k buffer)": (
                "paper",
                paper,
                {"buffer_size": 20_000},
            ),
            "padless default (optimal 60 buckets)": ("default", best, {}),
            "padless default with spread 1.1": (
                "default",
                best,
                {"batching": SortedBatching(spread=1.1)},
            ),
        }
        out[name] = {}
        for label, (kind, plan, overrides) in runs.items():
            first = _batches(kind, plan, overrides, epochs, 0, 0)
            out[name][label] = {
                **order_figures(first, position),
                "pairs_again_next_epoch": pair_recurrence(
                    first, _batches(kind, plan, overrides, epochs, 1, 0)
                ),
                "pairs_again_other_seed": pair_recurrence(
                    first, _batches(kind, plan, overrides, epochs, 0, 1)
                ),
            }
    return out


def _batches(
    kind: str, plan: Any, overrides: dict[str, Any], epochs: list[list[Any]], epoch: int, seed: int
) -> list[list[str]]:
    """One epoch's batches (example ids) of a sampler over that epoch's input order."""
    from padless.peers.lhotse_config import LhotsePeerConfig, bins_from_plan
    from padless.peers.lhotse_run import run_lhotse_peer
    from padless.sampling.config import SamplerConfig
    from padless.sampling.policies import DurationBudget
    from padless.sampling.sampler import DynamicBucketingSampler
    from padless.sampling.sources import ExampleList

    if kind == "lhotse":
        f = plan.filters
        cfg = LhotsePeerConfig(
            bins=bins_from_plan(plan),
            max_duration=360.0,
            buffer_size=20_000,
            seed=seed,
            epoch=epoch,
            min_example_duration=f.min_duration,
            max_example_duration=f.max_duration,
            tps_max=f.tps_max,
        )
        return run_lhotse_peer([epochs[epoch]], cfg).ranks[0].batches
    config = (
        SamplerConfig.paper(seed=seed, **overrides)
        if kind == "paper"
        else SamplerConfig(seed=seed, **overrides)
    )
    sampler = DynamicBucketingSampler(
        ExampleList(epochs[epoch]), plan, DurationBudget(360.0), config
    )
    sampler.set_epoch(epoch)
    return [[e.id for e in b] for b in sampler]


def order_figures(batches: list[list[str]], position: dict[str, int]) -> dict[str, float]:
    """Spearman correlation of input position and output step; mean displacement."""
    inp = np.array([position[i] for b in batches for i in b], dtype=np.float64)
    step = np.concatenate([np.full(len(b), s, dtype=np.float64) for s, b in enumerate(batches)])
    out_pos = np.arange(len(inp), dtype=np.float64)
    return {
        "spearman_input_vs_step": round(_spearman(inp, step), 4),
        "mean_displacement_examples": round(
            float(np.abs(np.argsort(np.argsort(inp)) - out_pos).mean()), 1
        ),
    }


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    def ranks(v: np.ndarray) -> np.ndarray:
        _, inv, counts = np.unique(v, return_inverse=True, return_counts=True)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return (starts + (counts - 1) / 2.0)[inv]  # average ranks of ties

    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


def pair_recurrence(a: list[list[str]], b: list[list[str]]) -> float:
    """Share of the pairs of examples batched together in run a that are batched together in
    run b (all pairs of every batch; counted per batch, not enumerated)."""
    batch_of = {i: n for n, batch in enumerate(b) for i in batch}
    same = total = 0
    for batch in a:
        groups = Counter(batch_of.get(i, -1 - j) for j, i in enumerate(batch))
        same += sum(v * (v - 1) // 2 for v in groups.values())
        total += len(batch) * (len(batch) - 1) // 2
    return round(same / max(1, total), 4)


# ------------------------------------------------------------------------------------- report


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def table(*cols: str, right: int = 0) -> list[str]:
    """Header lines; the last ``right`` columns right-aligned."""
    align = ["---"] * (len(cols) - right) + ["---:"] * right
    return [row(*cols), row(*align)]


def render(results: dict[str, Any], commands: str) -> str:
    lines = [
        f"# Sampling engine acceptance ({results['date']})",
        "",
        f"Command: `{commands}`",
        "",
        "- the machine (end of this record) is shared with other jobs: timings are noisy, "
        "compare within a row or a section",
        "- every run is `padless bench-sampler ... --json` in a fresh process (raw outputs in the "
        ".json beside this file); padding is over all emitted batches: "
        "1 - sum(lengths) / sum(batch size x longest)",
        "",
    ]
    if "padding" in results:
        lines += ["## Padding (one rank, 360 s padded budget, TPS <= 25, 0.5-40 s)", ""]
        for name, d in results["padding"].items():
            lines += [f"### {name}", ""]
            lines += table(
                "sampler", "audio padding", "token padding", "mean batch", "examples/s", right=4
            )
            for label, r in d["runs"].items():
                lines.append(
                    row(
                        f"padless {label} (buffer {r['config']['buffer_size']:,})",
                        pct(r["audio_padding"]),
                        pct(r["token_padding"]),
                        f"{r['mean_batch_size']:.1f}",
                        f"{r['examples_per_s']:,.0f}",
                    )
                )
                if "lhotse" in r:
                    lr = r["lhotse"]
                    lines.append(
                        row(
                            "lhotse, same plan and buffer as the row above",
                            pct(lr["audio_padding"]),
                            pct(lr["token_padding"]),
                            f"{lr['mean_batch_size']:.1f}",
                            f"{lr['examples_per_s']:,.0f}",
                        )
                    )
            lines += [
                "",
                "Bins alone at 60 buckets: the pad-to-bucket-edge bound from the plan, and the "
                "padding measured with random and with sorted batches.",
                "",
            ]
            lines += table(
                "plan",
                "bound: audio",
                "bound: tokens",
                "random: audio",
                "random: tokens",
                "sorted: audio",
                "sorted: tokens",
                right=6,
            )
            for label, e in d["bins_at_60"].items():
                b = e["pad_to_edge_bound"]
                lines.append(
                    row(
                        label,
                        pct(b["audio"]),
                        pct(b["token"]),
                        pct(e["random"]["audio_padding"]),
                        pct(e["random"]["token_padding"]),
                        pct(e["sorted"]["audio_padding"]),
                        pct(e["sorted"]["token_padding"]),
                    )
                )
            lines.append("")
    if "sync" in results:
        lines += [
            "## Synchronized buckets (8 ranks, own data each, 20k buffer, 2D 30x2, 360 s)",
            "",
            "Share of steps at which all 8 ranks used the same bucket, per tenth of the epoch; "
            "spread: per step, the longest example across ranks over the shortest.",
            "",
        ]
        tenths = [f"{i}/10" for i in range(1, 11)]
        lines += table(
            "sampler",
            "all steps",
            *tenths,
            "spread mean",
            "spread p95",
            "batches/rank",
            "mean batch",
            right=15,
        )
        for label, r in results["sync"].items():
            entries = [(label, r)] + (
                [("lhotse sync_buckets", r["lhotse"])] if "lhotse" in r else []
            )
            for lab, x in entries:
                sp = x["max_duration_spread"]
                lines.append(
                    row(
                        lab,
                        pct(x["rank_agreement"]),
                        *(pct(t) for t in x["rank_agreement_by_tenth"]),
                        f"{sp['mean']:.3f}",
                        f"{sp['p95']:.3f}",
                        f"{min(x['batches'])}-{max(x['batches'])}",
                        f"{x['mean_batch_size']:.1f}",
                    )
                )
        lines.append("")
    if "speed" in results:
        lines += [
            "## Throughput (1D 30 buckets, 360 s, 20k buffer, 1M Canary-like examples in memory)",
            "",
            "Wall time inside the samplers, side by side in one `bench-sampler --compare lhotse` "
            "run (lhotse's cut conversion excluded):",
            "",
        ]
        lines += table("run", "padless examples/s", "lhotse examples/s", "ratio", right=3)
        for i, r in enumerate(results["speed"]["runs"]):
            n = i // 2 + 1
            if "lhotse" in r:
                ours, theirs = r["examples_per_s"], r["lhotse"]["examples_per_s"]
                lines.append(
                    row(
                        f"{n}: padless default",
                        f"{ours:,.0f}",
                        f"{theirs:,.0f}",
                        f"{ours / theirs:.1f}x",
                    )
                )
            else:
                lines.append(row(f"{n}: padless paper mode", f"{r['examples_per_s']:,.0f}", "", ""))
        cpu = results["speed"].get("cpu")
        if cpu:
            lhotse_median = float(np.median(cpu["lhotse"]))
            lines += [
                "",
                f"Examples per CPU second, alternating in one process ({cpu['examples']:,} "
                "examples after filters; `cpu_time_ab`):",
                "",
            ]
            lines += table("sampler", "runs", "median", "vs lhotse", right=3)
            for label in ("padless default", "padless paper mode", "lhotse"):
                vals = cpu[label]
                median = float(np.median(vals))
                lines.append(
                    row(
                        label,
                        ", ".join(f"{v:,}" for v in vals),
                        f"{median:,.0f}",
                        f"{median / lhotse_median:.1f}x",
                    )
                )
        lines.append("")
    if "first-batch" in results:
        lines += ["## Time to first batch (1M streamed manifest, 20k buffer, 10% start fill)", ""]
        lines += table("reader", "runs (s)", "median (s)", right=1)
        for label, vals in results["first-batch"].items():
            runs = ", ".join(f"{v:.3f}" for v in vals)
            lines.append(row(label, runs, f"{float(np.median(vals)):.3f}"))
        lines.append("")
    if "rss" in results:
        r = results["rss"]
        lines += ["## Peak RSS (1M streamed manifest, 20k buffer, one rank, fresh process)", ""]
        lines += table("run", "peak RSS MB", "notes", right=0)
        lines += [
            row(
                "padless",
                f"{r['padless']['peak_rss_mb']:.0f}",
                f"baseline {r['padless']['baseline_rss_mb']:.0f} MB (python, numpy, padless)",
            ),
            row("padless, concurrent reader", f"{r['padless concurrent']['peak_rss_mb']:.0f}", ""),
            row(
                "lhotse, lazy cuts",
                f"{r['lhotse lazy cuts']['peak_rss_mb']:.0f}",
                f"{r['lhotse lazy cuts']['peak_rss_over_baseline_mb']:.0f} MB over its baseline "
                "(python, torch, lhotse)",
            ),
            "",
        ]
    if "resume" in results:
        lines += [
            "## Resume cost (state saved after K steps, through JSON, restored in a fresh sampler)",
            "",
        ]
        lines += table("K", "steps in epoch", "save + restore s", "state bytes", right=4)
        for k, r in results["resume"].items():
            lines.append(
                row(
                    f"{int(k):,}",
                    f"{r['steps_in_epoch']:,}",
                    f"{r['save_restore_s']:.3f}",
                    f"{r['state_bytes_per_rank'][0]:,}",
                )
            )
        lines.append("")
    if "shuffle" in results:
        lines += [
            "## Randomness kept (one rank, 360 s)",
            "",
            "Pairs again: share of the pairs of examples batched together in epoch 0 that are "
            "batched together again in epoch 1 (input order reshuffled by the stream's blocks), "
            "or in epoch 0 under another sampler seed. Spearman: rank correlation of an "
            "example's input position and its output step (1.0: input order kept).",
            "",
        ]
        for name, rows in results["shuffle"].items():
            lines += [f"### {name}", ""]
            lines += table(
                "sampler",
                "pairs again, next epoch",
                "pairs again, other seed",
                "Spearman",
                "mean displacement (examples)",
                right=4,
            )
            for label, r in rows.items():
                lines.append(
                    row(
                        label,
                        pct(r["pairs_again_next_epoch"]),
                        pct(r["pairs_again_other_seed"]),
                        f"{r['spearman_input_vs_step']:.3f}",
                        f"{r['mean_displacement_examples']:,.0f}",
                    )
                )
            lines.append("")
    lines.append(environment(info=results["machine"]))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--canary", required=True, help="1M Canary-like manifest (bench/datasets.py canary-mix)"
    )
    ap.add_argument(
        "--real", required=True, help="tokenized real metadata (bench/datasets.py real)"
    )
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--reps", type=int, default=2, help="repetitions of timing runs")
    ap.add_argument(
        "--work-dir", default=None, help="where plans are written (default: a temp dir)"
    )
    ap.add_argument("--out-dir", default=str(RESULTS))
    ap.add_argument(
        "--merge", action="store_true", help="add to today's record instead of replacing it"
    )
    args = ap.parse_args()
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections {sorted(unknown)}")
    out_dir = Path(args.out_dir)
    out_json = record_path(NAME, ".json", out_dir)
    results: dict[str, Any] = (
        json.loads(out_json.read_text()) if args.merge and out_json.exists() else {}
    )
    results.update(date=today(), machine=environment_info(*PACKAGES))
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="padless-acceptance-"))
    work.mkdir(parents=True, exist_ok=True)
    data = {"canary": args.canary, "real": args.real}
    for section in sections:
        print(f"[{section}]", flush=True)
        if section == "padding":
            results["padding"] = section_padding(data, work)
        elif section == "sync":
            results["sync"] = section_sync(args.canary, work)
        elif section == "speed":
            results["speed"] = section_speed(args.canary, work, args.reps)
        elif section == "first-batch":
            results["first-batch"] = section_first_batch(args.canary, work, max(3, args.reps))
        elif section == "rss":
            results["rss"] = section_rss(args.canary, work)
        elif section == "resume":
            results["resume"] = section_resume(args.canary, work)
        elif section == "shuffle":
            results["shuffle"] = section_shuffle(data, work)
        write_json_record(NAME, results, out_dir)  # after each section: a crash keeps the rest
    results.setdefault("commands", []).append(command())
    results["machine"] = environment_info(*PACKAGES)  # load average at the end of the run
    write_json_record(NAME, results, out_dir)
    write_record(NAME, render(results, "; ".join(results["commands"])), out_dir)


if __name__ == "__main__":
    main()
