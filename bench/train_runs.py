"""What the training benchmarks share: the embedded corpus, plans, batch-size tables, training
runs (one process or torchrun) and what their logs say.

A sibling module of the scripts in bench/ (``from train_runs import ...``), as `record` is.
Every step goes through padless's own commands or library calls, the way a user would run it:

- `ensure_corpus`: ``padless corpus synth`` + ``padless tokenizer train`` (the demo's 128 pieces
  per language), kept when the folder already holds the same corpus;
- `make_plan`: ``padless plan`` with the grid, bin estimator and filters of a scheme;
- `plan_summary`: a plan's buckets, examples kept and the padding its edges bound;
- `PAPER_SAMPLER`: the paper's (lhotse's) sampler as training overrides;
- `search_table`, `search_longest`: the simulated batch-size search (`padless.batchsize`) for
  the model a training config trains, overrides included (`simulated_probe`);
- `train`: ``padless train`` (one process) or ``torchrun -m padless.train`` (several gloo
  ranks), for a number of steps or of wall seconds, with its wall and CPU time.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from padless.data.stream import read_manifest
from padless.eval.plot_run import read_run
from padless.model import load_checkpoint
from padless.train.loop import loss_sums
from record import REPO

if TYPE_CHECKING:
    from padless.batchsize.config import OomptimizeConfig
    from padless.batchsize.simulate import SimulateProbe

PADLESS = [sys.executable, "-m", "padless"]
#: Pieces per language of the demo's tokenizer (`padless.demo.config.DemoConfig`).
VOCAB_PER_LANG = 128
#: Settings every benchmark run shares: no validation, no periodic checkpoints (one at the
#: end), no console bar, no TensorBoard: the logs are RUN/metrics.jsonl alone.
QUIET = [
    "data.dev=null",
    "validation.every_steps=0",
    "checkpoint.every_steps=0",
    "logging.progress=false",
    "logging.tensorboard=false",
]
#: The paper's (lhotse's) sampler as overrides (`SamplerConfig.paper`): random batches,
#: uniform bucket draws, strict assignment.
PAPER_SAMPLER = [
    "sampler.batching=random",
    "sampler.bucket_draw=uniform",
    "sampler.assignment=strict",
]


def cli(*args: str) -> str:
    """Run a padless command; return its standard output (its error output on failure)."""
    done = subprocess.run([*PADLESS, *args], cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"padless {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def ensure_corpus(folder: Path, hours: float, seed: int = 0) -> Path:
    """The embedded corpus of ``hours`` in ``folder`` with a tokenizer; made unless there."""
    from padless.data.corpus.config import CorpusConfig
    from padless.data.corpus.writer import is_complete

    tokenizer = folder / "tokenizer"
    if not is_complete(folder, CorpusConfig(hours=hours, seed=seed)):
        if folder.exists():
            shutil.rmtree(folder)
        cli(
            "corpus",
            "synth",
            "--out",
            str(folder),
            "--hours",
            str(hours),
            "--seed",
            str(seed),
            "--no-progress",
        )
    if not (tokenizer / "tokenizer.json").is_file():
        cli(
            "tokenizer",
            "train",
            str(folder / "train.jsonl"),
            "--out",
            str(tokenizer),
            "--vocab-per-lang",
            str(VOCAB_PER_LANG),
        )
    return folder


def corpus_overrides(corpus: Path) -> list[str]:
    """Training overrides pointing a config at ``corpus`` (training split and tokenizer)."""
    return [f"data.train={corpus / 'train.jsonl'}", f"data.tokenizer={corpus / 'tokenizer'}"]


def make_plan(
    corpus: Path,
    out: Path,
    *,
    num_buckets: int,
    num_subbuckets: int = 1,
    bins: str = "optimal",
    tps_max: float | None = None,
    max_duration: float | None = None,
    seed: int = 0,
) -> Path:
    """``padless plan`` on the corpus's training split -> ``out`` (plan.json)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    flags = ["--num-buckets", str(num_buckets), "--num-subbuckets", str(num_subbuckets)]
    flags += ["--bins", bins, "--seed", str(seed)]
    if tps_max is not None:
        flags += ["--tps-max", str(tps_max)]
    if max_duration is not None:
        flags += ["--max-duration", str(max_duration)]
    cli(
        "plan",
        str(corpus / "train.jsonl"),
        "--tokenizer",
        str(corpus / "tokenizer"),
        *flags,
        "--out",
        str(out),
    )
    return out


@contextlib.contextmanager
def simulated_probe(
    config: str, corpus: Path, memory_budget: str, tolerance: float = 0.05
) -> Iterator[tuple[OomptimizeConfig, SimulateProbe]]:
    """The simulated batch-size probe (CPU target, fp32: how CPU training runs) for the model
    the training ``config`` trains (preset plus ``model.overrides``, the vocabulary of the
    corpus's tokenizer) within ``memory_budget``, with the search settings: as ``padless demo``
    plans its batches (``padless oomptimize`` takes presets and checkpoints only)."""
    from padless.batchsize.config import OomptimizeConfig, SimulateConfig, StepConfig
    from padless.batchsize.search import SearchConfig
    from padless.batchsize.simulate import SimulateProbe
    from padless.batchsize.sizes import parse_size
    from padless.batchsize.workload import AEDWorkload
    from padless.data.tokenizer import CanaryTokenizer
    from padless.train.config import load_training_config
    from padless.train.loop import model_config

    recipe = load_training_config(REPO / config, corpus_overrides(corpus))
    vocab = CanaryTokenizer.load(corpus / "tokenizer").vocab_size
    budget = parse_size(memory_budget)
    settings = OomptimizeConfig(
        model=recipe.model.init,
        probe="simulate",
        budget_bytes=budget,
        step=StepConfig(precision="fp32"),
        search=SearchConfig(tolerance=tolerance),
        simulate=SimulateConfig(target="cpu"),
    )
    workload = AEDWorkload.from_config(
        model_config(recipe.model).with_vocab_size(vocab), name=settings.model
    )
    with SimulateProbe(workload, settings.step, budget, settings.simulate) as probe:
        yield settings, probe


def plan_summary(plan: Path) -> dict[str, Any]:
    """What a plan file (``padless plan``'s, or the RUN/plan.json training estimates) says
    about itself: buckets, examples seen and kept, filtered by reason, the padding its bucket
    edges bound."""
    doc = json.loads(plan.read_text())
    return {
        "buckets": len(doc["buckets"]),
        "examples_seen": doc["sample"]["examples_seen"],
        "examples_kept": doc["sample"]["examples_kept"],
        "filtered": doc["filtered"],
        "bound_padding": doc["expected_padding"],
    }


def search_table(
    plan: Path, out: Path, config: str, corpus: Path, memory_budget: str, tolerance: float = 0.05
) -> dict[str, Any]:
    """The batch size of every bucket of ``plan`` (`simulated_probe`); the table is written to
    ``out`` (what ``batch: {kind: table}`` reads) and returned."""
    from padless.batchsize.run import search_plan

    with simulated_probe(config, corpus, memory_budget, tolerance) as (settings, probe):
        outcome = search_plan(plan, probe, settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(outcome.document, indent=1) + "\n")
    return dict(outcome.document)


def search_longest(
    plan: Path, config: str, corpus: Path, memory_budget: str, tolerance: float = 0.05
) -> dict[str, Any]:
    """The batch size of ``plan``'s longest bucket alone (`simulated_probe`), with its shape:
    ``{"max_duration", "max_tokens", "batch_size"}``; sizes a duration budget."""
    from padless.batchsize.search import search
    from padless.batchsize.table import bucket_shapes, read_plan

    longest = max(bucket_shapes(read_plan(plan)), key=lambda s: (s.max_duration, s.max_tokens))
    with simulated_probe(config, corpus, memory_budget, tolerance) as (settings, probe):
        result = search([longest], probe, settings.search)
    return {
        "max_duration": longest.max_duration,
        "max_tokens": longest.max_tokens,
        "batch_size": result.buckets[0].batch_size,
    }


def train(
    config: str,
    run: Path,
    overrides: list[str],
    *,
    seconds: float | None = None,
    steps: int | None = None,
    nproc: int = 1,
    threads: int | None = None,
) -> dict[str, float]:
    """Train ``config`` with ``overrides`` into ``run`` (emptied first) for ``seconds`` of wall
    time or ``steps`` optimizer steps; ``nproc`` > 1 starts that many gloo ranks with torchrun
    (one intra-op thread each). Returns the wall and CPU seconds of the training processes."""
    if run.exists():
        shutil.rmtree(run)
    limits = [f"train.max_steps={steps if steps is not None else 10**9}"]
    if seconds is not None:
        limits.append(f"train.max_time={seconds}")
    if threads is not None:
        limits.append(f"train.threads={threads}")
    args = [config, *QUIET, *limits, *overrides, "--run-dir", str(run)]
    if nproc > 1:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            str(nproc),
            "-m",
            "padless.train",
            *args,
        ]
        env = dict(os.environ, OMP_NUM_THREADS="1")
    else:
        cmd, env = [*PADLESS, "train", *args], dict(os.environ)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training failed ({' '.join(cmd)}):\n{done.stderr[-4000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"process_wall_s": time.perf_counter() - started, "process_cpu_s": cpu}


def dev_loss(run: Path, corpus: Path, batch: int = 16) -> float:
    """Mean per-token loss of the run's last checkpoint on the dev split (as validation
    computes it: `padless.train.loop.loss_sums`)."""
    last = sorted((run / "checkpoints").glob("step-*.pt"))[-1]
    ckpt = load_checkpoint(last)
    examples = sorted(read_manifest(str(corpus / "dev.jsonl")), key=lambda e: e.duration)
    cpu = torch.device("cpu")
    sums = loss_sums(
        ckpt.model, ckpt.tokenizer(), examples, batch, cpu, torch.autocast("cpu", enabled=False)
    )
    return float(sums[0] / sums[1])


def mean_batch(run: Path) -> float:
    """Mean examples per batch over every step and rank of the run."""
    return float(np.nanmean(read_run(run).values["batch_size"]))
