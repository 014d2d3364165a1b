"""GPU validation of the simulator: ``simulate`` vs ``cuda`` for a mid-size preset in bf16.

Run through ``bench/gpu_oomptimizer.sh`` on a machine with one CUDA GPU and a CUDA build of torch
2.13 (padless installed). Two parts, same six bucket shapes:

1. Fixed batch sizes: the simulator's replayed peak (allocated = live blocks, reserved = the
   caching-allocator model) next to ``torch.cuda.max_memory_allocated`` / ``max_memory_reserved``
   of a real step. Acceptance: within 10%.
2. The full search with each probe at the same budget: chosen batch sizes within 10%.

Writes ``bench/results/<date>-oomptimizer-gpu-<preset>.{md,json}``.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import torch
import typer

from padless.batchsize import format_bytes, parse_size
from padless.batchsize.cuda import CudaProbe
from padless.batchsize.search import BucketShape, SearchConfig, search
from padless.batchsize.simulate import SimulateConfig, SimulateProbe
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

# (duration s, tokens): six shapes across a 0.5-40 s plan.
SHAPES = ((2.0, 30), (5.0, 60), (10.0, 110), (15.0, 160), (25.0, 230), (40.0, 330))


def main(
    preset: str = "canary-1b-small-decoder",
    budget: str = "40GiB",
    dtype: str = "bf16",
    workers: Annotated[int, typer.Option(help="Simulator processes.")] = 4,
    out_dir: Path = RESULTS,
) -> None:
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark validates the simulator on a GPU")
    budget_bytes = parse_size(budget)
    step = StepConfig(precision=dtype)  # type: ignore[arg-type]
    workload = AEDWorkload.load(preset)
    shapes = [BucketShape(d, t, index=i) for i, (d, t) in enumerate(SHAPES)]
    sim = SimulateProbe(workload, step, budget_bytes, SimulateConfig(workers=workers))
    sim.prepare(sorted(shapes, reverse=True))

    # 1. Fixed sizes: half of what the simulator says fits, so the real step surely runs.
    start = time.perf_counter()
    sim_search = search(shapes, sim, SearchConfig())
    sim_seconds = time.perf_counter() - start
    cuda = CudaProbe(workload, step, budget_bytes)
    fixed = []
    for r in sim_search.buckets:
        n = max(1, r.max_fitting // 2)
        replay = sim.replay(r.shape, n)
        m = cuda.measure(r.shape, n)
        fixed.append(
            {
                "duration": r.shape.max_duration,
                "tokens": r.shape.max_tokens,
                "batch_size": n,
                "sim_allocated": replay.peak_allocated,
                "cuda_allocated": cuda.last_peak_allocated,
                "sim_reserved": replay.peak_reserved,
                "cuda_reserved": m.peak_bytes,
                "fits": m.fits,
            }
        )
        print(fixed[-1], flush=True)

    # 2. The search with real steps.
    start = time.perf_counter()
    cuda_search = search(shapes, cuda, SearchConfig())
    cuda_seconds = time.perf_counter() - start
    sim.close()
    del cuda
    gc.collect()
    searched = [
        {
            "duration": a.shape.max_duration,
            "tokens": a.shape.max_tokens,
            "simulate_batch": a.batch_size,
            "cuda_batch": b.batch_size,
            "ratio": a.batch_size / b.batch_size,
        }
        for a, b in zip(sim_search.buckets, cuda_search.buckets, strict=True)
    ]
    date = today()
    record: dict[str, Any] = {
        "date": date,
        "command": command(),
        "machine": environment_info("torch"),  # with the GPU, its memory and CUDA version
        "config": {"preset": preset, "budget": budget, "dtype": dtype},
        "fixed": fixed,
        "search": searched,
        "simulate_search_seconds": sim_seconds,
        "cuda_search_seconds": cuda_seconds,
    }
    write_json_record(f"oomptimizer-gpu-{preset}", record, out_dir)
    md = [
        f"# Simulator vs CUDA: {preset}, {dtype}, {budget} ({date})",
        "",
        f"Command: `{record['command']}`",
        "",
        "| duration | tokens | batch | allocated sim / cuda | reserved sim / cuda |",
        "|---:|---:|---:|---:|---:|",
    ]
    for f in fixed:
        alloc = (f["sim_allocated"] / f["cuda_allocated"]) if f["cuda_allocated"] else float("nan")
        res = (f["sim_reserved"] / f["cuda_reserved"]) if f["cuda_reserved"] else float("nan")
        md.append(
            f"| {f['duration']:g} | {f['tokens']} | {f['batch_size']} "
            f"| {format_bytes(f['sim_allocated'])} / {format_bytes(f['cuda_allocated'])} "
            f"({alloc:.3f}) | {format_bytes(f['sim_reserved'])} / "
            f"{format_bytes(f['cuda_reserved'])} ({res:.3f}) |"
        )
    md += ["", "| duration | tokens | simulate | cuda | ratio |", "|---:|---:|---:|---:|---:|"]
    md += [
        f"| {s['duration']:g} | {s['tokens']} | {s['simulate_batch']} | {s['cuda_batch']} "
        f"| {s['ratio']:.3f} |"
        for s in searched
    ]
    md += ["", environment(info=record["machine"])]
    write_record(f"oomptimizer-gpu-{preset}", "\n".join(md), out_dir)


if __name__ == "__main__":
    typer.run(main)
