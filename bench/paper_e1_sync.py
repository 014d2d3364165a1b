"""E1(b) of the paper: what synchronized bucket choice saves per DDP step, simulated.

    python bench/paper_e1_sync.py --real-dir ../shared/data/real [--quick]

The paper: 7% / 13% / 20% lower step time at 2 / 16 / 128 GPUs. A DDP step waits for its slowest
rank, so when every rank draws its own bucket the step costs the longest of W batch shapes; with
the same bucket everywhere (``sync``) the ranks' shapes are alike. This script measures that on
the real metadata without W machines:

1. **Cost model.** Real training steps (forward, backward, AdamW) of a tiny preset on this CPU
   (one thread, process CPU time, median of repeats) at a handful of (batch size B, seconds T,
   tokens U) shapes, fitted by least squares as
   ``time = a + b*B*T + c*B*U (+ d*B*T**2)``; the quadratic term is kept when it lowers the
   leave-one-out error. The fit, its coefficients and its errors go into the record.
2. **Batches.** For W in 2, 16, 128: every rank gets its own random draw of the tokenized real
   metadata and its own sampler (the paper's sampler: 2D 30x2 equal-duration plan, TPS <= 25,
   0.5-40 s, a 360 s duration budget, random batches in buckets, a 20k buffer), run side by
   side; the first 40 steps (the buffer's ramp from 10% full) are skipped, the next S measured,
   with and without ``sync``; padless's default inflow draws with sync; and lhotse's
   ``sync_buckets`` through the peer (`padless.peers.lhotse_run`) on the same rank lists.
3. **Step time.** Each batch's shape (its size, longest duration, most tokens) costs the fitted
   time; a step costs the slowest rank's. Reported: the mean step time, its gain over no sync,
   and the mean over steps of the slowest rank over the average rank (the time ranks wait).

`simulate(...)` runs steps 2-3 for any cost function (part (a), real gloo runs, is
``bench/paper_e1_ddp.py``). ``--quick``: fewer fit shapes, shorter batches for the fit, 10
measured steps, and the lhotse peer's cost (it converts and samples every rank's examples)
cut by a quarter-size budget and buffer (90 s, 5,000 examples: the same batches per bucket
in the buffer). Writes ``bench/results/<date>-e1-sync.{md,json,png}``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper import PaperRow, paper_table, rows_json  # bench/paper.py
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

NAME = "e1-sync"
PACKAGES = ("torch", "numpy", "lhotse")
#: Paper: lower step time with synchronized buckets at 2 / 16 / 128 GPUs.
PAPER = {2: 0.07, 16: 0.13, 128: 0.20}
BUDGET_S = 360.0
#: Steps skipped before measuring: the sampler's buffer ramps up over its first 32 steps.
SKIP_STEPS = 40
#: The shared real metadata beside the clone (as the tests find it; PADLESS_REAL_DATA overrides).
REAL_DIR = Path(os.environ.get("PADLESS_REAL_DATA", REPO.parent / "shared" / "data" / "real"))
MIN_S, MAX_S, TPS = 0.5, 40.0, 25.0
#: Samplers compared: label -> (SamplerConfig overrides over `SamplerConfig.paper`).
VARIANTS = ("no sync", "padless sync (uniform draws)", "padless sync (inflow draws)", "lhotse")


# ---------------------------------------------------------------------------------- cost model


@dataclass(frozen=True)
class CostModel:
    """``time = a + b*B*T + c*B*U + d*B*T**2`` (seconds); ``d`` is 0 without the quadratic term."""

    a: float
    b: float
    c: float
    d: float = 0.0

    def __call__(self, batch: np.ndarray, seconds: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        bt = batch * seconds
        return self.a + self.b * bt + self.c * batch * tokens + self.d * bt * seconds


def _design(shapes: np.ndarray, quadratic: bool) -> np.ndarray:
    b, t, u = shapes[:, 0], shapes[:, 1], shapes[:, 2]
    cols = [np.ones_like(b), b * t, b * u] + ([b * t * t] if quadratic else [])
    return np.stack(cols, axis=1)


def fit_cost(shapes: np.ndarray, times: np.ndarray) -> tuple[CostModel, dict[str, Any]]:
    """Least squares of step times on (B, T, U) rows, with and without the quadratic term;
    the one with the lower leave-one-out relative error wins. Returns it and the fit report."""
    report: dict[str, Any] = {}
    best: tuple[float, CostModel] | None = None
    for quadratic in (False, True):
        x = _design(shapes, quadratic)
        coef = np.linalg.lstsq(x, times, rcond=None)[0]
        fitted = x @ coef
        loo = []
        for i in range(len(times)):
            keep = np.arange(len(times)) != i
            c = np.linalg.lstsq(x[keep], times[keep], rcond=None)[0]
            loo.append(abs(float(x[i] @ c) / times[i] - 1))
        model = CostModel(*[float(v) for v in coef])
        key = "quadratic" if quadratic else "linear"
        report[key] = {
            "coefficients": dict(zip("abcd", [float(v) for v in coef], strict=False)),
            "mean_abs_rel_error": float(np.mean(np.abs(fitted / times - 1))),
            "max_abs_rel_error": float(np.max(np.abs(fitted / times - 1))),
            "loo_mean_abs_rel_error": float(np.mean(loo)),
        }
        if best is None or float(np.mean(loo)) < best[0]:
            best = (float(np.mean(loo)), model)
            report["chosen"] = key
    assert best is not None
    return best[1], report


def fit_shapes(quick: bool) -> list[tuple[int, float, int]]:
    """(B, T, U) training shapes for the fit: about ``audio`` padded seconds per batch across
    the duration range, typical tokens (7.5 per second + 6), and token-heavy/light variants."""
    audio = 24.0 if quick else 72.0
    seconds = (1.5, 4.0, 10.0, 24.0) if quick else (1.0, 2.5, 5.0, 10.0, 18.0, 30.0, 40.0)
    shapes = []
    for t in seconds:
        b = max(1, round(audio / t))
        shapes.append((b, t, round(6 + 7.5 * t)))
    for t in (4.0,) if quick else (3.0, 12.0):  # tokens vary at fixed audio
        b = max(1, round(audio / t))
        shapes += [(b, t, round(6 + 2 * t)), (b, t, round(6 + 20 * t))]
    return shapes


def measure_steps(
    preset: str, shapes: Sequence[tuple[int, float, int]], repeats: int
) -> list[dict[str, Any]]:
    """Process CPU seconds of one training step per shape (one thread; median of ``repeats``
    after an untimed warm-up step), fp32 on CPU."""
    import torch

    from padless.batchsize.config import StepConfig
    from padless.batchsize.search import BucketShape
    from padless.batchsize.workload import AEDWorkload, make_optimizer, training_step

    torch.set_num_threads(1)
    torch.manual_seed(0)
    step = StepConfig(precision="fp32")
    workload = AEDWorkload.load(preset)
    model = workload.build(step)
    optimizer = make_optimizer(model, step)
    out = []
    for b, t, u in shapes:
        batch = workload.batch(BucketShape(t, u), b, torch.device("cpu"))
        times = []
        for r in range(repeats + 1):
            c0, w0 = time.process_time(), time.perf_counter()
            training_step(model, optimizer, batch, workload.loss, contextlib.nullcontext)
            if r:  # the first is a warm-up
                times.append((time.process_time() - c0, time.perf_counter() - w0))
        cpu = statistics.median(x for x, _ in times)
        wall = statistics.median(x for _, x in times)
        out.append({"B": b, "T": t, "U": u, "cpu_s": cpu, "wall_s": wall})
        print(f"  fit shape B={b} T={t:g} U={u}: {cpu:.3f} s CPU", flush=True)
    return out


# ---------------------------------------------------------------------------------- simulation


class _PerRank:
    """A source factory handing rank r its own example list (``world_size`` must match)."""

    def __init__(self, per_rank: Sequence[Sequence[Any]]) -> None:
        self.per_rank = per_rank

    def __call__(self, *, rank: int, world_size: int) -> Any:
        from padless.sampling.sources import ExampleList

        assert world_size == len(self.per_rank)
        return ExampleList(self.per_rank[rank])


def rank_lists(examples: Sequence[Any], world: int, per_rank: int, seed: int) -> list[list[Any]]:
    """Each rank's own uniform draw (without replacement within a rank) of the examples: ranks
    of a large job read disjoint shards of one distribution."""
    rng = np.random.default_rng(seed)
    return [[examples[i] for i in rng.permutation(len(examples))[:per_rank]] for _ in range(world)]


def padless_shapes(
    per_rank: list[list[Any]], plan: Any, config: Any, steps: int, budget_s: float
) -> np.ndarray:
    """(steps, ranks, 3) batch shapes (B, longest seconds, most tokens) of padless samplers,
    after `SKIP_STEPS` unmeasured steps."""
    from padless.sampling.policies import DurationBudget
    from padless.sampling.sampler import DynamicBucketingSampler

    world = len(per_rank)
    source = _PerRank(per_rank)
    samplers = [
        DynamicBucketingSampler(
            source, plan, DurationBudget(budget_s), config, rank=r, world_size=world
        )
        for r in range(world)
    ]
    iters = [iter(s) for s in samplers]
    out = np.zeros((steps, world, 3))
    for s in range(-SKIP_STEPS, steps):
        for r, it in enumerate(iters):
            batch = next(it)
            if s < 0:
                continue
            out[s, r] = (
                len(batch),
                max(e.duration for e in batch),
                max(e.num_tokens for e in batch),
            )
    for sampler in samplers:
        sampler.close()
    return out


def lhotse_shapes(
    per_rank: list[list[Any]], plan: Any, config: Any, steps: int, budget_s: float
) -> np.ndarray:
    """The same for lhotse's sampler with ``sync_buckets`` through the peer (first ``steps``)."""
    from padless.peers.lhotse_run import run_lhotse_peer
    from padless.peers.settings import lhotse_settings
    from padless.sampling.policies import DurationBudget

    peer = lhotse_settings(plan, DurationBudget(budget_s), config)
    result = run_lhotse_peer(per_rank, replace(peer, sync_buckets=True))
    lengths = {e.id: (e.duration, e.num_tokens) for rank in per_rank for e in rank}
    out = np.zeros((steps, len(per_rank), 3))
    for r, rank in enumerate(result.ranks):
        if len(rank.batches) < SKIP_STEPS + steps:
            raise RuntimeError(f"lhotse rank {r} made only {len(rank.batches)} batches")
        for s, ids in enumerate(rank.batches[SKIP_STEPS : SKIP_STEPS + steps]):
            d, u = zip(*(lengths[i] for i in ids), strict=True)
            out[s, r] = (len(ids), max(d), max(u))
    return out


def step_costs(shapes: np.ndarray, cost: Callable[..., np.ndarray]) -> dict[str, float]:
    """Mean DDP step time (slowest rank per step), mean rank time, their ratio, and the spread
    of one rank's batch times (coefficient of variation, all batches)."""
    t = cost(shapes[..., 0], shapes[..., 1], shapes[..., 2])  # (steps, ranks)
    slowest = t.max(axis=1)
    return {
        "step_s": float(slowest.mean()),
        "rank_mean_s": float(t.mean()),
        "batch_time_cv": float(t.std() / t.mean()),
        "wait_share": float(1 - t.mean() / slowest.mean()),
        "audio_s_per_step": float((shapes[..., 0] * shapes[..., 1]).sum(axis=1).mean()),
        # Wall seconds per second of (padded) audio trained on, all ranks together: a sampler
        # that draws short buckets more often takes shorter steps but trains on less audio.
        "s_per_audio_s": float(slowest.sum() / (shapes[..., 0] * shapes[..., 1]).sum()),
        "mean_batch_size": float(shapes[..., 0].mean()),
    }


def per_rank_examples(available: int, buffer_size: int, steps: int, budget_s: float) -> int:
    """Examples each rank gets: its buffer plus every step's batch (< 100 at 360 s)."""
    per_batch = math.ceil(100 * budget_s / BUDGET_S)
    return min(available, buffer_size + per_batch * (SKIP_STEPS + steps))


def simulate(
    examples: Sequence[Any],
    worlds: Sequence[int],
    cost: Callable[..., np.ndarray],
    steps: int,
    buffer_size: int,
    budget_s: float = BUDGET_S,
    seed: int = 0,
    lhotse: bool = True,
) -> dict[int, dict[str, dict[str, float]]]:
    """Per world size, per sampler variant (`VARIANTS`): `step_costs` of ``steps`` steps."""
    from padless.sampling.config import InflowDraw, PlanConfig, SamplerConfig
    from padless.sampling.estimate import plan_from_examples
    from padless.sampling.filters import FilterConfig

    filters = FilterConfig(min_duration=MIN_S, max_duration=MAX_S, tps_max=TPS)
    plan, _, _ = plan_from_examples(examples, PlanConfig(30, 2, "equal-duration"), filters)
    base = SamplerConfig.paper(buffer_size=buffer_size, seed=seed, balance_ranks=False)
    configs = {
        "no sync": replace(base, sync=False),
        "padless sync (uniform draws)": base,
        "padless sync (inflow draws)": replace(base, bucket_draw=InflowDraw()),
    }
    per_rank_n = per_rank_examples(len(examples), buffer_size, steps, budget_s)
    out: dict[int, dict[str, dict[str, float]]] = {}
    for world in worlds:
        t0 = time.perf_counter()
        per_rank = rank_lists(examples, world, per_rank_n, seed + world)
        out[world] = {
            label: step_costs(padless_shapes(per_rank, plan, config, steps, budget_s), cost)
            for label, config in configs.items()
        }
        if lhotse:
            out[world]["lhotse"] = step_costs(
                lhotse_shapes(per_rank, plan, base, steps, budget_s), cost
            )
        print(f"  {world} ranks: {time.perf_counter() - t0:.0f} s", flush=True)
    return out


# ------------------------------------------------------------------------------------- report


def gain(res: dict[str, dict[str, float]], label: str, key: str = "step_s") -> float:
    """Share of ``key`` (step time, or time per audio second) saved over no sync."""
    return 1 - res[label][key] / res["no sync"][key]


def paper_rows(sim: dict[int, dict[str, dict[str, float]]], why: str) -> list[PaperRow]:
    return [
        PaperRow(
            f"{world} ranks: step time saved, {label}",
            gain(res, label),
            PAPER.get(world) if label.startswith("padless sync (uniform") else None,
            unit="%",
            digits=1,
            note=why,
        )
        for world, res in sim.items()
        for label in VARIANTS[1:]
        if label in res
    ]


def explain(
    sim: dict[int, dict[str, dict[str, float]]], fit: dict[str, Any], budget_s: float
) -> str:
    """Why the gains differ from the paper's, from the runs themselves: sync can only save the
    time ranks spend waiting without it, and that wait follows from how much batch times vary."""
    coef = fit[fit["chosen"]]["coefficients"]
    label = "padless sync (uniform draws)"
    parts = [
        f"{w} ranks: {100 * r['no sync']['wait_share']:.0f}% without sync, "
        f"{100 * r[label]['wait_share']:.0f}% with"
        for w, r in sim.items()
    ]
    cv = [r["no sync"]["batch_time_cv"] for r in sim.values()]
    return (
        "sync saves at most the share of a step that ranks wait for the slowest; measured "
        f"waiting shares: {'; '.join(parts)}. Under a {budget_s:g} s budget every batch holds "
        f"about the same padded audio, so the fitted batch times vary by only "
        f"{100 * min(cv):.0f}-{100 * max(cv):.0f}% (coefficient of variation; the constant "
        f"a = {coef['a']:.3f} s and b x {budget_s:g} s = {coef['b'] * budget_s:.2f} s are the "
        "same for "
        "every bucket), and random batches inside a bucket keep part of that spread with sync. "
        "The paper's GPU steps, with batch sizes searched per 2D bucket, vary more across "
        "buckets than this CPU cost model of a tiny preset"
    )


def render(record: dict[str, Any], rows: list[PaperRow]) -> str:
    fit = record["fit"]
    chosen = fit[fit["chosen"]]
    c = chosen["coefficients"]
    terms = f"{c['a']:.4f} + {c['b']:.3e} B*T + {c['c']:.3e} B*U" + (
        f" + {c['d']:.3e} B*T^2" if "d" in c else ""
    )
    lines = [
        f"# E1(b): synchronized buckets, simulated DDP step time ({record['date']})",
        "",
        f"Command: `{record['command']}` ({record['wall_s']:.0f} s)",
        "",
        f"Data: {record['examples']:,} tokenized examples of `{record['real_dir']}`. Plan: 2D "
        f"30x2 equal-duration, TPS <= {TPS:g}, {MIN_S:g}-{MAX_S:g} s; {record['budget_s']:g} s "
        f"duration budget; the paper's sampler (random batches in buckets, strict), buffer "
        f"{record['buffer_size']:,} per rank, {record['steps']} steps measured after "
        f"{SKIP_STEPS} unmeasured, every rank its own random draw of "
        f"{record['per_rank_examples']:,} examples."
        + (" --quick: fewer steps and fit shapes." if record["quick"] else ""),
        "",
        f"## Cost model ({record['preset']}, CPU, one thread, fp32, forward + backward + AdamW)",
        "",
        f"Chosen fit ({fit['chosen']}): time = {terms} (seconds; T in seconds, U in tokens).",
        f"Error on the {len(record['fit_points'])} measured shapes: mean "
        f"{100 * chosen['mean_abs_rel_error']:.1f}%, max {100 * chosen['max_abs_rel_error']:.1f}%; "
        f"leave-one-out mean {100 * chosen['loo_mean_abs_rel_error']:.1f}% (the other fit: "
        + ", ".join(
            f"{k} {100 * v['loo_mean_abs_rel_error']:.1f}%"
            for k, v in fit.items()
            if k not in ("chosen", fit["chosen"])
        )
        + ").",
        "",
        "| B | T (s) | U | measured CPU s | fitted s |",
        "|---:|---:|---:|---:|---:|",
    ]
    model = CostModel(**{k: v for k, v in c.items()})
    for p in record["fit_points"]:
        fitted = float(model(np.array(p["B"]), np.array(p["T"]), np.array(p["U"])))
        lines.append(f"| {p['B']} | {p['T']:g} | {p['U']} | {p['cpu_s']:.3f} | {fitted:.3f} |")
    lines += [
        "",
        "## Step time (slowest rank per step, fitted model)",
        "",
        "| ranks | sampler | mean step (s) | saved vs no sync | saved per audio second "
        "| waiting share | batch time CV | mean batch | padded audio per step (s) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for world, res in record["simulation"].items():
        for label, r in res.items():
            saved = "" if label == "no sync" else f"{100 * gain(res, label):.1f}%"
            per_audio = (
                "" if label == "no sync" else f"{100 * gain(res, label, 's_per_audio_s'):.1f}%"
            )
            lines.append(
                f"| {world} | {label} | {r['step_s']:.3f} | {saved} | {per_audio} "
                f"| {100 * r['wait_share']:.1f}% "
                f"| {100 * r['batch_time_cv']:.0f}% | {r['mean_batch_size']:.1f} "
                f"| {r['audio_s_per_step']:.0f} |"
            )
    lines += [
        "",
        "Waiting share: 1 - (mean rank time / mean step time), the part of a step an average "
        "rank idles for the slowest. Batch time CV: standard deviation over mean of the fitted "
        "time of every rank's batches. Padded audio per step (batch size x longest) sums all "
        "ranks; saved per audio second compares step time per second of it, which a sampler "
        "cannot improve by drawing short buckets more often. Synchronized runs draw the same "
        "bucket sequence at every rank count (same seed), so their step times share its "
        "sampling error (about the batch time CV / sqrt(steps)).",
        "",
        "## Against the paper",
        "",
        paper_table(rows),
        environment(load_before=record["load_before"], info=record["machine"]),
    ]
    return "\n".join(lines)


def plot(record: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sim = record["simulation"]
    worlds = list(sim)
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(worlds))
    labels = [v for v in VARIANTS[1:] if v in next(iter(sim.values()))]
    width = 0.8 / (len(labels) + 1)
    for k, label in enumerate(labels):
        ax.bar(x + k * width, [100 * gain(sim[w], label) for w in worlds], width, label=label)
    ax.bar(
        x + len(labels) * width,
        [100 * PAPER.get(int(w), 0) for w in worlds],
        width,
        color="k",
        label="paper",
    )
    ax.set_xticks(x + width * len(labels) / 2, [f"{w} ranks" for w in worlds])
    ax.set_ylabel("step time saved vs no sync (%)")
    ax.legend(fontsize=8)
    ax.set_title("E1(b): synchronized buckets, simulated")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--real-dir", type=Path, default=REAL_DIR, help="shared real metadata")
    ap.add_argument("--work-dir", type=Path, default=None, help="tokenizer cache (default: tmp)")
    ap.add_argument("--preset", default="tiny-canary-1b", help="model of the cost model")
    ap.add_argument("--ranks", default="2,16,128")
    ap.add_argument("--steps", type=int, default=None, help="measured steps (50; --quick: 10)")
    ap.add_argument(
        "--buffer-size", type=int, default=None, help="examples per rank (20000; quick 5000)"
    )
    ap.add_argument("--budget-s", type=float, default=None, help="padded s (360; quick 90)")
    ap.add_argument("--repeats", type=int, default=None, help="timed steps per fit shape")
    ap.add_argument("--no-lhotse", action="store_true", help="skip the lhotse peer column")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if not any(args.real_dir.glob("*.jsonl")):
        print(f"skipped: no real metadata (*.jsonl) in {args.real_dir}", flush=True)
        return 0
    import datasets as bench_datasets  # bench/datasets.py
    from paper_e2_schemes import load_examples  # bench/paper_e2_schemes.py

    steps = args.steps or (10 if args.quick else 50)
    buffer_size = args.buffer_size or (5000 if args.quick else 20_000)
    budget_s = args.budget_s or (BUDGET_S / 4 if args.quick else BUDGET_S)
    repeats = args.repeats or (1 if args.quick else 3)
    worlds = [int(w) for w in args.ranks.split(",")]
    load_before = os.getloadavg()
    start = time.perf_counter()
    print("cost model", flush=True)
    points = measure_steps(args.preset, fit_shapes(args.quick), repeats)
    shapes = np.array([[p["B"], p["T"], p["U"]] for p in points], dtype=np.float64)
    model, fit = fit_cost(shapes, np.array([p["cpu_s"] for p in points]))
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="padless-e1-"))
    manifest = work / "real.jsonl"
    bench_datasets.real_manifest(args.real_dir, manifest, work)
    examples = load_examples(manifest)
    print(f"{len(examples):,} examples; simulation", flush=True)
    sim = simulate(examples, worlds, model, steps, buffer_size, budget_s, lhotse=not args.no_lhotse)
    why = explain(sim, fit, budget_s)
    rows = paper_rows(sim, why)
    record = {
        "date": today(),
        "command": command(),
        "quick": args.quick,
        "real_dir": str(args.real_dir),
        "examples": len(examples),
        "preset": args.preset,
        "steps": steps,
        "buffer_size": buffer_size,
        "budget_s": budget_s,
        "per_rank_examples": per_rank_examples(len(examples), buffer_size, steps, budget_s),
        "fit_points": points,
        "fit": fit,
        "simulation": {str(w): v for w, v in sim.items()},
        "paper_rows": rows_json(rows),
        "wall_s": round(time.perf_counter() - start, 1),
        "load_before": list(load_before),
        "machine": environment_info(*PACKAGES),
    }
    write_json_record(NAME, record, args.out_dir)
    png = record_path(NAME, ".png", args.out_dir)
    plot(record, png)
    text = render(record, rows).replace(
        "## Against the paper", f"![E1]({png.name})\n\n## Against the paper", 1
    )
    write_record(NAME, text, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
