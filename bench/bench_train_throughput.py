"""Training throughput of the optimized scheme against the paper's baseline, on the demo corpus.

- optimized: a 2D plan (duration x tokens) with the TPS filter, and the batch size of every
  bucket searched by the simulated probe for a memory budget (``padless oomptimize``);
- baseline: random fixed-size batches from one bucket (configs/fixed-batch.yaml), the batch
  size being the largest that fits the same budget for the longest utterance (the same search
  on a one-bucket plan), as a fixed batch size must.

Both train the same model from the same seed for the same wall time, one after the other, with
``padless train`` (the config's model, optimizer and schedule; validation off). Reported: audio
seconds per wall second and per CPU second of the training process (CPU time is the robust
figure on a shared machine), padding, mean batch size, training loss at equal wall time and the
dev loss of each run's last checkpoint; `padless plot-run` overlays the two runs.

    python bench/bench_train_throughput.py [--corpus data/demo] [--minutes 4] \\
        [--memory-budget 512MiB] [--num-buckets 8]

Needs a corpus with a tokenizer (``padless demo --out data/demo`` or ``padless corpus synth`` +
``padless tokenizer train``). Writes bench/results/<date>-train-throughput.{md,json} and the
overlay plots <date>-train-throughput-{loss,throughput,padding}.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from padless.eval.plot_run import plot_runs
from record import REPO, command, environment, record_path, write_json_record, write_record
from train_runs import cli, corpus_overrides, dev_loss, make_plan, mean_batch, train


def search(corpus: Path, out: Path, args: argparse.Namespace, buckets: int, subs: int) -> Path:
    """A plan (TPS filter only with more than one bucket) and its searched batch-size table
    (``padless oomptimize`` for the preset, which is what both runs train)."""
    plan = make_plan(
        corpus, out / "plan.json", num_buckets=buckets, num_subbuckets=subs,
        tps_max=args.tps_max if buckets > 1 else None, max_duration=args.max_duration,
    )  # fmt: skip
    cli(
        "oomptimize", "--model", args.preset, "--plan", str(plan), "--probe", "simulate",
        "--memory-budget", args.memory_budget, "--dtype", "fp32", "--out", str(out / "table.json"),
    )  # fmt: skip
    return plan


def run_for(
    config: str, corpus: Path, run: Path, overrides: list[str], args: argparse.Namespace
) -> dict[str, float]:
    """``padless train`` of the preset the batch sizes were searched for, ``args.minutes`` of
    wall time; its wall and CPU seconds."""
    preset = [f"model.init={args.preset}", "model.overrides={}", "data.num_workers=1"]
    return train(
        config, run, [*corpus_overrides(corpus), *preset, *overrides],
        seconds=args.minutes * 60, threads=args.threads,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "data" / "demo")
    parser.add_argument("--minutes", type=float, default=4.0, help="wall time of each run")
    parser.add_argument("--memory-budget", default="512MiB")
    parser.add_argument("--preset", default="tiny-canary-1b-flash")
    parser.add_argument("--num-buckets", type=int, default=8)
    parser.add_argument("--num-subbuckets", type=int, default=2)
    parser.add_argument("--tps-max", type=float, default=25.0)
    parser.add_argument("--max-duration", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench-throughput")
    args = parser.parse_args()
    load_before = list(map(float, Path("/proc/loadavg").read_text().split()[:3]))

    opt_plan = search(
        args.corpus, args.work / "optimized", args, args.num_buckets, args.num_subbuckets
    )
    base_plan = search(args.corpus, args.work / "baseline", args, 1, 1)
    base_batch = json.loads((args.work / "baseline" / "table.json").read_text())["buckets"][0][
        "batch_size"
    ]
    runs: dict[str, Path] = {"optimized": args.work / "optimized" / "run"}
    runs["baseline"] = args.work / "baseline" / "run"
    cost = {
        "optimized": run_for(
            "configs/demo-tiny.yaml", args.corpus, runs["optimized"],
            [f"data.plan={opt_plan}", "batch={kind: table, path: "
             f"{args.work / 'optimized' / 'table.json'}}}"], args,
        ),
        "baseline": run_for(
            "configs/fixed-batch.yaml", args.corpus, runs["baseline"],
            [f"data.plan={base_plan}", f"batch={{kind: fixed, batch_size: {base_batch}}}"], args,
        ),
    }  # fmt: skip
    plots = args.work / "plots"
    _, summaries = plot_runs([runs["optimized"], runs["baseline"]], plots)
    results: dict[str, Any] = {}
    for name, summary in zip(runs, summaries, strict=True):
        audio_s = summary["audio_h"] * 3600
        results[name] = {
            **summary,
            **cost[name],
            "audio_s_per_cpu_s": audio_s / cost[name]["process_cpu_s"],
            "mean_batch_size": mean_batch(runs[name]),
            "dev_loss": dev_loss(runs[name], args.corpus),
        }
    opt, base = results["optimized"], results["baseline"]
    ratio_wall = opt["audio_s_per_s"] / base["audio_s_per_s"]
    ratio_cpu = opt["audio_s_per_cpu_s"] / base["audio_s_per_cpu_s"]
    config = {
        "corpus": str(args.corpus),
        "minutes": args.minutes,
        "memory_budget": args.memory_budget,
        "preset": args.preset,
        "plan": f"{args.num_buckets}x{args.num_subbuckets}, tps_max {args.tps_max}",
        "max_duration": args.max_duration,
        "baseline_batch_size": base_batch,
        "threads": args.threads,
    }
    write_json_record(
        "train-throughput",
        {"command": command(), "config": config, "results": results,
         "ratio_audio_per_wall_s": ratio_wall, "ratio_audio_per_cpu_s": ratio_cpu},
    )  # fmt: skip
    for stem in ("loss", "throughput", "padding"):
        shutil.copy(plots / f"{stem}.png", record_path(f"train-throughput-{stem}", ".png"))

    def row(label: str, key: str, fmt: str) -> str:
        cells = ["-" if r[key] is None else fmt.format(r[key]) for r in (opt, base)]
        return f"| {label} | {cells[0]} | {cells[1]} |"

    lines = [
        "# Training throughput: optimized sampling vs random fixed-size batches "
        f"({args.minutes:g} min each)",
        "",
        f"`{command()}`",
        "",
        "Config: " + ", ".join(f"{k} {v}" for k, v in config.items()),
        "",
        "| | optimized (2D plan, TPS, searched table) | baseline (random, fixed size) |",
        "|---|---|---|",
        row("steps", "steps", "{:d}"),
        row("mean batch size", "mean_batch_size", "{:.1f}"),
        row("audio padding", "audio_padding", "{:.1%}"),
        row("token padding", "token_padding", "{:.1%}"),
        row("audio s per wall s", "audio_s_per_s", "{:.1f}"),
        row("audio s per CPU s", "audio_s_per_cpu_s", "{:.1f}"),
        row("train loss at equal wall time", "loss_at_common_wall", "{:.3f}"),
        row("dev loss, last checkpoint", "dev_loss", "{:.3f}"),
        "",
        f"Ratio optimized / baseline: audio per wall second **x{ratio_wall:.2f}**, "
        f"per CPU second **x{ratio_cpu:.2f}**.",
        "",
        f"Plots (plot-run overlay): `{today_name('loss')}`, `{today_name('throughput')}`, "
        f"`{today_name('padding')}`.",
        "",
        environment("torch", "numpy", load_before=load_before),
    ]
    write_record("train-throughput", "\n".join(lines))


def today_name(stem: str) -> str:
    return record_path(f"train-throughput-{stem}", ".png").name


if __name__ == "__main__":
    main()
