"""Validation of the simulator against measured memory on the CPU (fp32, tiny presets).

    python bench/bench_oomptimizer_cpu.py --plan /tmp/oomptimizer/plan30x1.json

1. For each tiny preset and six bucket shapes (2-30 s), the simulator's peak (fake tensors, CPU
   target: exact tensor sizes, no allocator model) next to the peak RSS a fresh process
   measures for the same training step (the ``cpu`` probe). Acceptance: within 10%.
2. The search with the simulator for a CPU budget on four buckets of a real plan, then each
   chosen batch size run for real with the ``cpu`` probe: it must fit the budget.

Writes ``bench/results/<date>-oomptimizer-cpu-validation.{md,json}``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import torch
import typer

from padless.batchsize import format_bytes, parse_size
from padless.batchsize.cpu import CpuProbe
from padless.batchsize.search import BucketShape, SearchConfig, search
from padless.batchsize.simulate import SimulateConfig, SimulateProbe
from padless.batchsize.table import bucket_shapes, read_plan
from padless.batchsize.workload import AEDWorkload, StepConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import (  # bench/record.py
    RESULTS,
    command,
    environment,
    environment_info,
    today,
    write_json_record,
    write_record,
)

PRESETS = ("tiny-canary-1b", "tiny-canary-1b-small-decoder", "tiny-canary-1b-flash")
# (duration s, tokens, batch size): six shapes across the range of a 0.5-40 s plan.
SHAPES = (
    (2.0, 24, 32),
    (5.0, 50, 16),
    (10.0, 90, 8),
    (15.0, 130, 6),
    (20.0, 180, 4),
    (30.0, 250, 3),
)


def main(
    plan: Annotated[Path, typer.Option(help="A plan.json (e.g. 30x1 of the real metadata).")],
    budget: str = "1.5GiB",
    buckets: str = "5,15,25,29",
    out_dir: Path = RESULTS,
) -> None:
    torch.set_num_threads(1)
    step = StepConfig("fp32")
    rows: list[dict[str, Any]] = []
    for preset in PRESETS:
        workload = AEDWorkload.load(preset)
        sim = SimulateProbe(workload, step, 1 << 40, SimulateConfig(target="cpu"))
        cpu = CpuProbe(workload, step, 1 << 40)
        with sim:
            for i, (duration, tokens, n) in enumerate(SHAPES):
                shape = BucketShape(duration, tokens, index=i)
                simulated = sim.measure(shape, n).peak_bytes
                start = time.perf_counter()
                measured = cpu.measure(shape, n).peak_bytes
                assert simulated is not None and measured is not None
                rows.append(
                    {
                        "preset": preset,
                        "duration": duration,
                        "tokens": tokens,
                        "batch_size": n,
                        "simulated_bytes": simulated,
                        "measured_bytes": measured,
                        "ratio": measured / simulated,
                        "cpu_trial_seconds": round(time.perf_counter() - start, 1),
                    }
                )
                print(rows[-1], flush=True)

    # 2. Sizes chosen by the simulator for a CPU budget, run for real.
    budget_bytes = parse_size(budget)
    picked = [int(i) for i in buckets.split(",")]
    shapes = [s for s in bucket_shapes(read_plan(plan)) if s.index in picked]
    workload = AEDWorkload.load(PRESETS[0])
    with SimulateProbe(workload, step, budget_bytes, SimulateConfig(target="cpu")) as sim:
        result = search(shapes, sim, SearchConfig())
    cpu = CpuProbe(workload, step, budget_bytes)
    fit_rows = []
    for r in result.buckets:
        m = cpu.measure(r.shape, r.batch_size)
        fit_rows.append(
            {
                "bucket": r.shape.index,
                "max_duration": r.shape.max_duration,
                "max_tokens": r.shape.max_tokens,
                "batch_size": r.batch_size,
                "max_fitting": r.max_fitting,
                "simulated_bytes": r.peak_bytes,
                "measured_bytes": m.peak_bytes,
                "fits": m.fits,
            }
        )
        print(fit_rows[-1], flush=True)

    date = today()
    ratios = [r["ratio"] for r in rows]
    record = {
        "date": date,
        "command": command(),
        "machine": environment_info("torch"),
        "shapes": rows,
        "worst_ratio_deviation": max(abs(x - 1) for x in ratios),
        "budget_bytes": budget_bytes,
        "chosen_sizes_run": fit_rows,
    }
    write_json_record("oomptimizer-cpu-validation", record, out_dir)
    md = [
        f"# Simulator vs measured CPU memory, fp32 ({date})",
        "",
        f"Command: `{record['command']}`",
        "",
        "## Peak memory of one training step: simulated vs peak RSS of a fresh process",
        "",
        "| preset | duration (s) | tokens | batch | simulated | measured | measured / simulated |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    md += [
        f"| {r['preset']} | {r['duration']:g} | {r['tokens']} | {r['batch_size']} "
        f"| {format_bytes(r['simulated_bytes'])} | {format_bytes(r['measured_bytes'])} "
        f"| {r['ratio']:.3f} |"
        for r in rows
    ]
    md += [
        "",
        f"Largest deviation: {100 * record['worst_ratio_deviation']:.1f}% (acceptance: 10%).",
        "",
        f"## Batch sizes chosen by the simulator for a {budget} CPU budget, run for real",
        "",
        "| bucket | max duration | max tokens | chosen | largest fit | simulated | measured "
        "| fits |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    md += [
        f"| {r['bucket']} | {r['max_duration']:.2f} | {r['max_tokens']} | {r['batch_size']} "
        f"| {r['max_fitting']} | {format_bytes(r['simulated_bytes'])} "
        f"| {format_bytes(r['measured_bytes'])} | {'yes' if r['fits'] else 'NO'} |"
        for r in fit_rows
    ]
    md += ["", environment(info=record["machine"])]
    write_record("oomptimizer-cpu-validation", "\n".join(md), out_dir)


if __name__ == "__main__":
    typer.run(main)
