"""E2(a) of the paper: sampling schemes A-D (and padless's defaults, E) on the real metadata.

    python bench/paper_e2_schemes.py --real-dir ../shared/data/real [--quick]

The paper's schemes, each one step on from the last, plus padless's defaults:

- A: 1D, 30 equal-duration buckets, a 360 s duration budget, 0.5-40 s, no TPS filter;
- B: A with the TPS <= 25 filter (same buckets re-estimated on the filtered data);
- C: B with the batch sizes the search finds (Canary-1B, bf16, 80 GiB, simulated);
- D: C on a 2D plan, 30 duration x 2 token buckets;
- E: padless's defaults: padding-optimal 1D bins, sorted batches, inflow draws, flexible
  assignment, batch sizes searched as for C. At C's bucket count (30), not the library's default
  60, so that E against C is the bins and the batching alone (and one search fewer).

A-D run the paper's (lhotse-like) sampler, `SamplerConfig.paper` with a 20k buffer; E runs
`SamplerConfig()`. Each scheme's sampler runs one epoch of the tokenized real metadata on one
rank; mean batch size, batch audio seconds and padding come from the batches it yields. The
predicted peak memory is the simulated probe's replay of each bucket at the batch size the scheme
gives it (the duration budget's size ``floor(360 / max duration)`` for A and B) at the bucket's
largest shape; the scheme's figure is the largest over buckets. Ratios are relative to A.

The paper's figures: mean batch size C = 3.4x A and D = 5x A; D's padding 4.5% (audio) and 19%
(tokens). Rows more than a third away are explained from the per-bucket figures the script
measures (below the table).

``--quick`` uses 4 duration buckets instead of 30 so the simulated searches take a couple of
minutes (3.7 min on 2 shared cores); its ratios are not the paper's setup. The full run
simulates about one Canary-1B training step per bucket shape of A, C, D and E (about 120 at
roughly 10 s each on 2 shared cores: 15-25 minutes). Part (b) (a short real training run per
scheme) is a separate script; it can reuse `scheme_samplers` with its own plans and policies.
Without ``--real-dir`` (or when the folder is missing) the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
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

NAME = "e2-schemes"
PACKAGES = ("torch", "numpy")
#: The paper's duration budget of schemes A and B (padded seconds per batch).
BUDGET_S = 360.0
#: The shared real metadata beside the clone (as the tests find it; PADLESS_REAL_DATA overrides).
REAL_DIR = Path(os.environ.get("PADLESS_REAL_DATA", REPO.parent / "shared" / "data" / "real"))
MIN_S, MAX_S, TPS = 0.5, 40.0, 25.0
#: Paper, section on sampling schemes: mean batch size relative to A, and D's padding.
PAPER = {"C_batch": 3.4, "D_batch": 5.0, "D_audio_padding": 0.045, "D_token_padding": 0.19}


@dataclass(frozen=True)
class Scheme:
    """One row: a plan, a batch-size policy, the sampler config, and what the search found."""

    name: str
    description: str
    plan: Any  # padless.sampling.plan.BucketPlan
    policy: Any  # a padless.sampling.policies policy
    config: Any  # padless.sampling.config.SamplerConfig
    #: Batch size per bucket used for the memory prediction (duration budget: at the max).
    sizes: tuple[int, ...]


def load_examples(manifest: Path) -> list[Any]:
    from padless.data.stream import ExampleStream

    return list(ExampleStream([str(manifest)], shuffle=True, seed=0, require_text=False).open(0))


def make_plan(examples: Sequence[Any], buckets: int, subbuckets: int, bins: str, tps: bool) -> Any:
    from padless.sampling.config import PlanConfig
    from padless.sampling.estimate import plan_from_examples
    from padless.sampling.filters import FilterConfig

    filters = FilterConfig(min_duration=MIN_S, max_duration=MAX_S, tps_max=TPS if tps else None)
    config = PlanConfig(num_buckets=buckets, num_subbuckets=subbuckets, bins=bins)
    plan, _, _ = plan_from_examples(examples, config, filters)
    return plan


def shapes_of(plan: Any) -> list[Any]:
    """The plan's trial shapes without their bucket index (which only labels logs), so the
    probe's trace cache serves a shape once for every scheme that has it: D's high-token
    sub-buckets have C's shapes (same duration edges and sample maxima)."""
    from padless.batchsize.table import bucket_shapes

    return [replace(s, index=0) for s in bucket_shapes(plan.buckets, TPS)]


def budget_sizes(plan: Any) -> tuple[int, ...]:
    """The duration budget's batch size at each bucket's longest example."""
    return tuple(max(1, math.floor(BUDGET_S / b.max_duration)) for b in plan.buckets)


def searched_sizes(plan: Any, probe: Any) -> tuple[tuple[int, ...], dict[str, Any]]:
    """The search's batch sizes for ``plan`` (the library's defaults: 5% tolerance, 10% margin)."""
    from padless.batchsize.search import SearchConfig, search

    result = search(shapes_of(plan), probe, SearchConfig())
    return tuple(r.batch_size for r in result.buckets), {
        "seconds": round(result.seconds, 1),
        "trials": result.num_trials,
    }


def build_schemes(
    examples: Sequence[Any], buckets: int, probe: Any
) -> tuple[list[Scheme], dict[str, Any]]:
    """Schemes A-E on ``examples`` with ``buckets`` duration buckets; the searches' costs."""
    from padless.sampling.config import SamplerConfig
    from padless.sampling.policies import BucketBatchSizes, DurationBudget

    paper = SamplerConfig.paper(buffer_size=20_000)
    plan_a = make_plan(examples, buckets, 1, "equal-duration", tps=False)
    plan_b = make_plan(examples, buckets, 1, "equal-duration", tps=True)
    plan_d = make_plan(examples, buckets, 2, "equal-duration", tps=True)
    plan_e = make_plan(examples, buckets, 1, "optimal", tps=True)
    searches: dict[str, Any] = {}
    sizes: dict[str, tuple[int, ...]] = {}
    for key, plan in (("C", plan_b), ("D", plan_d), ("E", plan_e)):
        t0 = time.perf_counter()
        sizes[key], searches[key] = searched_sizes(plan, probe)
        print(f"  search {key}: {time.perf_counter() - t0:.0f} s", flush=True)
    duration = DurationBudget(BUDGET_S)
    n = buckets
    schemes = [
        Scheme(
            "A", f"1D {n}, {BUDGET_S:g} s budget", plan_a, duration, paper, budget_sizes(plan_a)
        ),
        Scheme("B", "A + TPS <= 25", plan_b, duration, paper, budget_sizes(plan_b)),
        Scheme(
            "C", "B + searched batch sizes", plan_b, BucketBatchSizes(sizes["C"]), paper, sizes["C"]
        ),
        Scheme("D", f"C + 2D {n}x2", plan_d, BucketBatchSizes(sizes["D"]), paper, sizes["D"]),
        Scheme(
            "E",
            f"padless defaults: optimal 1D {n}, sorted batches, searched sizes",
            plan_e,
            BucketBatchSizes(sizes["E"]),
            SamplerConfig(),
            sizes["E"],
        ),
    ]
    return schemes, searches


def scheme_samplers(scheme: Scheme, examples: Sequence[Any], world_size: int = 1) -> list[Any]:
    """One `DynamicBucketingSampler` per rank for ``scheme`` (what part (b) can train with)."""
    from padless.sampling.sampler import DynamicBucketingSampler
    from padless.sampling.sources import ExampleList

    return [
        DynamicBucketingSampler(
            ExampleList(examples),
            scheme.plan,
            scheme.policy,
            scheme.config,
            rank=r,
            world_size=world_size,
        )
        for r in range(world_size)
    ]


def measure(scheme: Scheme, examples: Sequence[Any], probe: Any) -> dict[str, Any]:
    """One epoch of the scheme's sampler: batch figures from its batches; predicted memory."""
    from padless.sampling.stats import PaddingTotals

    (sampler,) = scheme_samplers(scheme, examples)
    totals = PaddingTotals()
    per_bucket = [PaddingTotals() for _ in range(len(scheme.plan))]
    t0 = time.perf_counter()
    for batch in sampler:
        info = sampler.last_batch
        dur = [e.duration for e in batch]
        tok = [e.num_tokens or 0 for e in batch]
        totals.add(dur, tok)
        per_bucket[info.bucket].add(dur, tok)
    sampler_s = time.perf_counter() - t0
    shapes = shapes_of(scheme.plan)
    peaks = [probe.replay(s, n).peak_reserved for s, n in zip(shapes, scheme.sizes, strict=True)]
    worst = int(np.argmax(peaks))
    return {
        "scheme": scheme.name,
        "description": scheme.description,
        "buckets": len(scheme.plan),
        "sampler": scheme.config.to_json(),
        "policy": scheme.policy.describe() if hasattr(scheme.policy, "describe") else None,
        "sampler_s": round(sampler_s, 2),
        "dropped": dict(sampler.dropped),
        **totals.to_json(),
        "pad_to_edge_bound": dict(scheme.plan.expected_padding),
        "peak_memory_bytes": int(peaks[worst]),
        "peak_memory_bucket": worst,
        "per_bucket": [
            {
                "bucket": i,
                "max_duration": round(b.max_duration, 3),
                "max_tokens": shapes[i].max_tokens,
                "occupancy": b.sample_count,
                "mean_duration": round(b.sample_duration / max(1, b.sample_count), 3),
                "mean_tokens": round(b.sample_tokens / max(1, b.sample_count), 2),
                "size": scheme.sizes[i],
                "peak_memory_bytes": int(peaks[i]),
                "duration_s": per_bucket[i].duration,
                "padded_duration_s": per_bucket[i].padded_duration,
                "tokens": per_bucket[i].tokens,
                "padded_tokens": per_bucket[i].padded_tokens,
                **per_bucket[i].to_json(),
            }
            for i, b in enumerate(scheme.plan.buckets)
        ],
    }


# ------------------------------------------------------------------------------------- report


def token_share(size_gain: float, token_ratio: float) -> float:
    """The share of a high-token example's memory held by its tokens, when capping tokens at
    ``token_ratio`` of it lets ``size_gain`` times as many examples fit: memory per example
    ``m(U) = e + t*U``, so ``m(U_hi) / m(U_lo) = size_gain``."""
    if token_ratio >= 1.0:
        return float("nan")
    return (1.0 - 1.0 / size_gain) / (1.0 - token_ratio)


def _padding_share(per_bucket: list[dict[str, Any]]) -> dict[str, float]:
    """Share of a scheme's padding (seconds, tokens) in its shortest third of buckets."""
    rows = sorted(per_bucket, key=lambda r: r["max_duration"])
    low = rows[: max(1, len(rows) // 3)]
    out = {}
    for kind, real, padded in (
        ("audio", "duration_s", "padded_duration_s"),
        ("token", "tokens", "padded_tokens"),
    ):
        waste = [r[padded] - r[real] for r in per_bucket]
        low_waste = [r[padded] - r[real] for r in low]
        out[kind] = sum(low_waste) / max(1e-9, sum(waste))
    return out


def length_stats(examples: Sequence[Any]) -> dict[str, float]:
    """Duration statistics of the examples the TPS-filtered schemes keep."""
    d = np.array([e.duration for e in examples])
    u = np.array([e.num_tokens or 0 for e in examples])
    keep = (d >= MIN_S) & (d <= MAX_S) & (u <= TPS * d)
    d = d[keep]
    return {
        "examples": int(keep.sum()),
        "mean_duration": float(d.mean()),
        "median_duration": float(np.median(d)),
        "share_under_2s": float((d < 2.0).mean()),
        "share_over_10s": float((d > 10.0).mean()),
    }


def explain(
    results: dict[str, dict[str, Any]], budget_bytes: int, data: dict[str, float]
) -> dict[str, str]:
    """Measured reasons for the rows that differ from the paper (keys: row names)."""
    a, c, d = results["A"], results["C"], results["D"]
    notes: dict[str, str] = {}
    # C vs A: per bucket, the searched size over the budget's size, weighted by steps.
    cb = c["per_bucket"]
    ratio = [r["size"] / max(1, math.floor(BUDGET_S / r["max_duration"])) for r in cb]
    short = [r for r in cb if r["max_duration"] <= 5.0]
    share_short = sum(r["occupancy"] for r in short) / max(1, sum(r["occupancy"] for r in cb))
    mean_dur = sum(r["occupancy"] * r["mean_duration"] for r in cb) / max(
        1, sum(r["occupancy"] for r in cb)
    )
    fill = [r["peak_memory_bytes"] / budget_bytes for r in a["per_bucket"]]
    notes["C"] = (
        f"per bucket the search allows {min(ratio):.1f}x-{max(ratio):.1f}x the budget's size at "
        f"the bucket's longest example (median {float(np.median(ratio)):.1f}x): at 360 s a batch "
        f"already reserves {min(fill):.0%}-{max(fill):.0%} of the {budget_bytes / 2**30:.0f} GiB "
        "(weights, gradients and AdamW state included), and the search stops 10% short of the "
        f"budget, so little is left to gain. The real metadata is short (mean {mean_dur:.1f} s; "
        f"{share_short:.0%} of examples in buckets up to 5 s)"
    )
    # D vs C: how different the two token sub-buckets of a duration bucket are, and the share of
    # an example's memory its tokens must hold for the low sub-bucket's larger batch.
    db = d["per_bucket"]
    pairs = [(db[i], db[i + 1]) for i in range(0, len(db) - 1, 2)]
    tok_ratio = float(np.median([lo["max_tokens"] / max(1, hi["max_tokens"]) for lo, hi in pairs]))
    size_gain = float(np.median([lo["size"] / max(1, hi["size"]) for lo, hi in pairs]))
    paper_gain = PAPER["D_batch"] / PAPER["C_batch"]
    notes["D"] = (
        f"D's low-token sub-buckets cap transcripts at {tok_ratio:.0%} of the high ones' maximum "
        f"(median over duration buckets) and get {size_gain:.2f}x their batch size: per example "
        f"memory = encoder part + tokens x t, so tokens hold "
        f"{token_share(size_gain, tok_ratio):.0%} of a high-token example's memory in Canary-1B "
        f"at these shapes. The paper's D/C gain ({paper_gain:.2f}x) at this token split would "
        f"need {token_share(paper_gain, tok_ratio):.0%}: transcripts longer relative to the "
        "audio (AST, dense speech) than this ASR metadata's"
    )
    low_share = _padding_share(db)
    bound = d["pad_to_edge_bound"]
    for key, kind, unit in (
        ("audio_padding", "audio", "seconds"),
        ("token_padding", "token", "tokens"),
    ):
        notes[f"D_{key}"] = (
            f"the bins set it: D's plan bounds {kind} padding at {100 * bound[kind]:.1f}% when "
            f"every example is padded to its bucket's edge (measured {100 * d[key]:.1f}% with "
            f"random batches), and the shortest third of the duration buckets hold "
            f"{100 * low_share[kind]:.0f}% of the padded {unit}: the real metadata is short "
            f"(mean {data['mean_duration']:.1f} s, median {data['median_duration']:.1f} s, "
            f"{100 * data['share_under_2s']:.0f}% under 2 s), and a bucket's width is large "
            "relative to short utterances"
        )
    return notes


def paper_rows(results: dict[str, dict[str, Any]], notes: dict[str, str]) -> list[PaperRow]:
    a = results["A"]
    rows = []
    for key, r in results.items():
        batch = r["mean_batch_size"] / a["mean_batch_size"]
        paper = PAPER.get(f"{key}_batch")
        rows.append(
            PaperRow(f"{key} mean batch size / A", batch, paper, unit="x", note=notes.get(key, ""))
        )
    d = results["D"]
    for key, label in (("audio_padding", "audio"), ("token_padding", "token")):
        rows.append(
            PaperRow(
                f"D {label} padding",
                d[key],
                PAPER[f"D_{key}"],
                unit="%",
                digits=1,
                note=notes.get(f"D_{key}", ""),
            )
        )
    return rows


def render(record: dict[str, Any], rows: list[PaperRow]) -> str:
    res = record["schemes"]
    a = res["A"]
    lines = [
        f"# E2(a): sampling schemes A-E on the real metadata ({record['date']})",
        "",
        f"Command: `{record['command']}` ({record['wall_s']:.0f} s)",
        "",
        f"Data: {record['examples']:,} tokenized examples of `{record['real_dir']}` "
        f"(bench/datasets.py real). Model {record['model']}, {record['dtype']}, "
        f"{record['budget_gib']:g} GiB, simulated probe (CUDA allocator model). "
        f"{record['buckets']} duration buckets"
        + (" (--quick: not the paper's 30)" if record["quick"] else "")
        + ".",
        "",
        "| scheme | what | buckets | mean batch | batch audio (s) | audio padding "
        "| token padding | predicted peak | batch / A | audio / A | peak / A |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, r in res.items():
        lines.append(
            f"| {key} | {r['description']} | {r['buckets']} | {r['mean_batch_size']:.1f} "
            f"| {r['mean_batch_seconds']:.0f} | {100 * r['audio_padding']:.1f}% "
            f"| {100 * r['token_padding']:.1f}% | {r['peak_memory_bytes'] / 2**30:.1f} GiB "
            f"| {r['mean_batch_size'] / a['mean_batch_size']:.2f}x "
            f"| {r['mean_batch_seconds'] / a['mean_batch_seconds']:.2f}x "
            f"| {r['peak_memory_bytes'] / a['peak_memory_bytes']:.2f}x |"
        )
    lines += [
        "",
        "Audio and token padding are relative to the padded batch (1 - real / (batch size x "
        "longest)); A's is the baseline the other rows' ratios use. Predicted peak: the largest "
        "over buckets of the simulated step's reserved memory at the bucket's size and longest "
        "shape.",
        "",
        "## Against the paper",
        "",
        paper_table(rows),
        "## Searches (simulated)",
        "",
        "| scheme | seconds | trials |",
        "|---|---:|---:|",
        *[f"| {k} | {v['seconds']:.0f} | {v['trials']} |" for k, v in record["searches"].items()],
        "",
        "## Per bucket: scheme C (searched size vs the 360 s budget's)",
        "",
        "| bucket | max duration (s) | max tokens | examples (plan sample) | mean duration (s) "
        "| budget size | searched size | ratio | B's peak at the budget size |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r, ra in zip(res["C"]["per_bucket"], res["B"]["per_bucket"], strict=True):
        budget = max(1, math.floor(BUDGET_S / r["max_duration"]))
        lines.append(
            f"| {r['bucket']} | {r['max_duration']:.2f} | {r['max_tokens']} | {r['occupancy']:,} "
            f"| {r['mean_duration']:.2f} | {budget} | {r['size']} | {r['size'] / budget:.2f}x "
            f"| {ra['peak_memory_bytes'] / 2**30:.1f} GiB |"
        )
    lines += [
        "",
        "## Per duration bucket: scheme D's two token sub-buckets",
        "",
        "| duration bucket | max duration (s) | max tokens low / high | searched size low / high "
        "| audio padding low / high | token padding low / high |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    db = res["D"]["per_bucket"]
    for i in range(0, len(db) - 1, 2):
        lo, hi = db[i], db[i + 1]
        lines.append(
            f"| {i // 2} | {lo['max_duration']:.2f} | {lo['max_tokens']} / {hi['max_tokens']} "
            f"| {lo['size']} / {hi['size']} "
            f"| {100 * lo['audio_padding']:.1f}% / {100 * hi['audio_padding']:.1f}% "
            f"| {100 * lo['token_padding']:.1f}% / {100 * hi['token_padding']:.1f}% |"
        )
    lines += ["", environment(load_before=record["load_before"], info=record["machine"])]
    return "\n".join(lines)


def plot(record: dict[str, Any], path: Path) -> None:
    """Mean batch size, padding and predicted peak per scheme, relative to A."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = record["schemes"]
    keys = list(res)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    a = res["A"]
    x = np.arange(len(keys))
    for k, (field, label) in enumerate(
        (("mean_batch_size", "mean batch"), ("mean_batch_seconds", "batch audio"))
    ):
        left.bar(x + (k - 0.5) * 0.38, [res[s][field] / a[field] for s in keys], 0.38, label=label)
    left.plot(
        [2, 3], [PAPER["C_batch"], PAPER["D_batch"]], "k*", markersize=10, label="paper batch"
    )
    left.set_xticks(x, keys)
    left.set_ylabel("relative to A")
    left.legend(fontsize=8)
    for k, (field, label) in enumerate((("audio_padding", "audio"), ("token_padding", "tokens"))):
        right.bar(x + (k - 0.5) * 0.38, [100 * res[s][field] for s in keys], 0.38, label=label)
    right.plot([3, 3], [100 * PAPER["D_audio_padding"], 100 * PAPER["D_token_padding"]], "k*")
    right.set_xticks(x, keys)
    right.set_ylabel("padding (%)")
    right.legend(fontsize=8)
    fig.suptitle(f"E2(a): schemes on the real metadata, {record['model']} simulated")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--real-dir", type=Path, default=REAL_DIR, help="shared real metadata")
    ap.add_argument("--work-dir", type=Path, default=None, help="tokenizer cache (default: tmp)")
    ap.add_argument("--model", default="canary-1b")
    ap.add_argument("--budget-gib", type=float, default=80.0)
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--workers", type=int, default=2, help="simulator processes")
    ap.add_argument("--buckets", type=int, default=None, help="duration buckets (default 30)")
    ap.add_argument("--quick", action="store_true", help="4 buckets: a few minutes")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if not any(args.real_dir.glob("*.jsonl")):
        print(f"skipped: no real metadata (*.jsonl) in {args.real_dir}", flush=True)
        return 0
    import datasets as bench_datasets  # bench/datasets.py
    from padless.batchsize.config import SimulateConfig, StepConfig
    from padless.batchsize.simulate import SimulateProbe
    from padless.batchsize.workload import AEDWorkload

    buckets = args.buckets or (4 if args.quick else 30)
    load_before = os.getloadavg()
    start = time.perf_counter()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="padless-e2-"))
    manifest = work / "real.jsonl"
    bench_datasets.real_manifest(args.real_dir, manifest, work)
    examples = load_examples(manifest)
    print(f"{len(examples):,} examples; {buckets} buckets", flush=True)
    budget = int(args.budget_gib * 2**30)
    step = StepConfig(precision=args.dtype)
    with SimulateProbe(
        AEDWorkload.load(args.model), step, budget, SimulateConfig(workers=args.workers)
    ) as probe:
        schemes, searches = build_schemes(examples, buckets, probe)
        results = {}
        for scheme in schemes:
            results[scheme.name] = measure(scheme, examples, probe)
            r = results[scheme.name]
            print(
                f"  {scheme.name}: mean batch {r['mean_batch_size']:.1f}, "
                f"{r['mean_batch_seconds']:.0f} s, padding {r['audio_padding']:.3f} / "
                f"{r['token_padding']:.3f}, peak {r['peak_memory_bytes'] / 2**30:.1f} GiB",
                flush=True,
            )
        steps_simulated = probe.steps_simulated
    data = length_stats(examples)
    notes = explain(results, budget, data)
    rows = paper_rows(results, notes)
    record = {
        "date": today(),
        "command": command(),
        "quick": args.quick,
        "real_dir": str(args.real_dir),
        "examples": len(examples),
        "kept_lengths": data,
        "model": args.model,
        "dtype": args.dtype,
        "budget_gib": args.budget_gib,
        "buckets": buckets,
        "searches": searches,
        "steps_simulated": steps_simulated,
        "schemes": results,
        "paper_rows": rows_json(rows),
        "wall_s": round(time.perf_counter() - start, 1),
        "load_before": list(load_before),
        "machine": environment_info(*PACKAGES),
    }
    write_json_record(NAME, record, args.out_dir)
    png = record_path(NAME, ".png", args.out_dir)
    plot(record, png)
    text = render(record, rows).replace("## Searches", f"![E2]({png.name})\n\n## Searches", 1)
    write_record(NAME, text, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
