"""DDP acceptance on CPU: ``torchrun --nproc-per-node 2 -m padless.train configs/demo-tiny.yaml
train.max_steps=40`` with gloo, step-based (infinite sampler) and with finite epochs, and what
the run logged: steps per rank, buckets shared across ranks, loss, epochs, throughput.

    python bench/bench_train_ddp.py [--steps 40] [--config configs/demo-tiny.yaml]

Needs the demo corpus (``padless demo --out data/demo``). Writes
bench/results/<date>-train-ddp.md. Timings are from a shared machine: compare them only within
one record.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from record import REPO, command, environment, write_record


def torchrun(config: str, steps: int, run_dir: Path, extra: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
        "-m", "padless.train", config, f"train.max_steps={steps}", "logging.progress=false",
        f"debug.dump_batches={run_dir / 'dump.jsonl'}", *extra, "--run-dir", str(run_dir),
    ]  # fmt: skip


ENV = dict(os.environ, OMP_NUM_THREADS="1")


def run(config: str, steps: int, run_dir: Path, extra: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(torchrun(config, steps, run_dir, extra), check=True, cwd=REPO, env=ENV)
    return time.perf_counter() - started


def logged(metrics: Path) -> int:
    return len(metrics.read_text().splitlines()) if metrics.exists() else 0


def stop_and_resume(
    config: str, steps: int, run_dir: Path, extra: list[str], stop_at: int
) -> tuple[int, float]:
    """SIGTERM to torchrun once ``stop_at`` steps are logged, then ``--resume``; returns the
    step of the checkpoint and the resume start-up time (command to its first new step)."""
    metrics = run_dir / "metrics.jsonl"
    proc = subprocess.Popen(torchrun(config, steps, run_dir, extra), cwd=REPO, env=ENV)
    while logged(metrics) < 2 * stop_at:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)  # torchrun passes it on to every rank's process group
    proc.wait()  # torchrun itself exits 1 (SignalException); the ranks checkpoint and exit 0
    stopped = int(json.loads(metrics.read_text().splitlines()[-1])["step"])
    started = time.perf_counter()
    cmd = [*torchrun(config, steps, run_dir, extra), "--resume", str(run_dir)]
    resume = subprocess.Popen(cmd, cwd=REPO, env=ENV)
    while logged(metrics) <= 2 * stopped:
        time.sleep(0.05)
    startup = time.perf_counter() - started
    if resume.wait() != 0:
        raise SystemExit("the resumed run failed")
    return stopped, startup


def same_steps(a: Path, b: Path) -> tuple[int, int]:
    """(step-rank pairs of ``a``, pairs whose loss, bucket and example ids ``b`` repeats)."""

    def keyed(run_dir: Path, name: str) -> dict[tuple[int, int], dict[str, Any]]:
        lines = (run_dir / name).read_text().splitlines()
        return {(r["step"], r["rank"]): r for r in map(json.loads, lines)}

    ma, mb = keyed(a, "metrics.jsonl"), keyed(b, "metrics.jsonl")
    da, db = keyed(a, "dump.jsonl"), keyed(b, "dump.jsonl")
    equal = sum(
        k in mb
        and (ma[k]["loss"], ma[k]["bucket"]) == (mb[k]["loss"], mb[k]["bucket"])
        and da[k]["ids"] == db[k]["ids"]
        for k in ma
    )
    return len(ma), equal


def summarize(run_dir: Path) -> dict[str, Any]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    by: dict[int, dict[int, dict[str, Any]]] = collections.defaultdict(dict)
    for r in rows:
        by[r["step"]][r["rank"]] = r
    both = sorted(s for s in by if len(by[s]) == 2)
    dump = [json.loads(line) for line in (run_dir / "dump.jsonl").read_text().splitlines()]
    draws = {
        k: collections.Counter(i for d in dump if d["rank"] == k for i in d["ids"]) for k in (0, 1)
    }

    def mean_loss(steps: list[int]) -> float:
        return sum(by[s][k]["loss"] for s in steps for k in (0, 1)) / (2 * len(steps))

    return {
        "steps": {k: sum(1 for s in by if k in by[s]) for k in (0, 1)},
        "same_bucket": sum(by[s][0]["bucket"] == by[s][1]["bucket"] for s in both) / len(both),
        "loss_first5": mean_loss(both[:5]),
        "loss_last5": mean_loss(both[-5:]),
        "sampler_epochs": max(r["epoch"] for r in rows),
        "data_passes": {k: sum(c.values()) / len(c) for k, c in draws.items()},
        "step_time_s": sum(r["step_time_s"] for r in rows) / len(rows),
        "data_wait_s": sum(r["data_wait_s"] for r in rows) / len(rows),
        "audio_s_per_s": sum(r["audio_s"] for r in rows) / sum(r["step_time_s"] for r in rows),
        "audio_padding": sum(r["audio_padding"] for r in rows) / len(rows),
        "token_padding": sum(r["token_padding"] for r in rows) / len(rows),
        "batch_size": sum(r["batch_size"] for r in rows) / len(rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--config", default="configs/demo-tiny.yaml")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "bench-ddp")
    args = parser.parse_args()
    load = os.getloadavg()
    variants = {
        "step-based (sampler.infinite=true)": ["sampler.infinite=true"],
        "finite epochs (sampler.infinite=false)": ["sampler.infinite=false"],
    }
    lines = [
        f"# DDP training on CPU, 2 gloo ranks ({time.strftime('%Y-%m-%d')})",
        "",
        f"Command: `{command()}`",
        "",
        f"Each variant: `torchrun --nproc-per-node 2 -m padless.train {args.config} "
        f"train.max_steps={args.steps} <variant>`; statistics from RUN/metrics.jsonl and the "
        "debug dump. Timings: shared 2-core machine, noisy.",
        "",
        "| variant | steps rank 0 / 1 | same bucket | loss steps 1-5 | loss last 5 | "
        "sampler epochs | data passes r0 / r1 | wall (s) | step (s) | data wait (s) | "
        "audio s/s per rank | audio pad | token pad | batch |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, extra in variants.items():
        run_dir = args.runs / name.split()[0]
        if run_dir.exists():
            subprocess.run(["rm", "-rf", str(run_dir)], check=True)
        wall = run(args.config, args.steps, run_dir, extra)
        s = summarize(run_dir)
        passes = s["data_passes"]
        lines.append(
            f"| {name} | {s['steps'][0]} / {s['steps'][1]} | {s['same_bucket']:.1%} | "
            f"{s['loss_first5']:.3f} | {s['loss_last5']:.3f} | {s['sampler_epochs']} | "
            f"{passes[0]:.1f} / {passes[1]:.1f} | {wall:.1f} | {s['step_time_s']:.3f} | "
            f"{s['data_wait_s']:.4f} | {s['audio_s_per_s']:.1f} | {s['audio_padding']:.3f} | "
            f"{s['token_padding']:.3f} | {s['batch_size']:.1f} |"
        )
    resumed = args.runs / "stopped"
    if resumed.exists():
        subprocess.run(["rm", "-rf", str(resumed)], check=True)
    step_based = variants["step-based (sampler.infinite=true)"]
    stopped, startup = stop_and_resume(args.config, args.steps, resumed, step_based, 7)
    pairs, equal = same_steps(args.runs / "step-based", resumed)
    lines += [
        "",
        "Stop and resume (step-based): SIGTERM to torchrun once step 7 was in the log; every "
        f"rank checkpointed at step {stopped} and exited 0. Then the same command with "
        f"`--resume`: {equal} of {pairs} step-rank pairs have the loss, bucket and example "
        f"ids of the uninterrupted run above, bitwise. {startup:.1f} s from the resume command "
        "to its first new step (process start, imports, DDP set-up and the restore).",
    ]
    lines += [
        "",
        '"sampler epochs": epoch ends the finite sampler went through (every rank ends each '
        'epoch at the same step). "data passes": draws per distinct example in the debug dump.',
        "",
        environment("torch", "numpy", load_before=load),
    ]
    write_record("train-ddp", "\n".join(lines))


if __name__ == "__main__":
    main()
