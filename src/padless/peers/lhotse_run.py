"""Running the lhotse peer: ``run_lhotse_peer`` (batches and timings per rank, in this process)
and ``measure_lhotse_peer_rss`` (the same run in a fresh subprocess, for its peak RSS).

The settings and what they mean are in `padless.peers.lhotse_config`. lhotse is a dev
dependency, imported only when a peer runs.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from padless.data.example import Example
from padless.peers.lhotse_buckets import PeerFilter, SamplerSetup, estimate_bins_2d
from padless.peers.lhotse_config import (
    RANK_SEED_STRIDE,
    Bins1D,
    Bins2D,
    LhotsePeerConfig,
    import_lhotse,
)
from padless.peers.lhotse_cuts import Concat, ExampleRows, LazyCuts, Row, TsvRows, make_cut
from padless.peers.rss import peak_rss_mb, reset_peak_rss, status_mb

# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerRankResult:
    """What one rank's lhotse sampler did."""

    rank: int
    batches: list[list[str]]  # example ids of each batch, in order (empty if not kept)
    buckets: list[int]  # bucket index of each batch (its first example's bucket)
    batch_sizes: list[int]
    examples: int  # examples in all batches
    steps: int
    convert_s: float  # Example -> cut conversion (materialize=True; excluded from sampler_s)
    construct_s: float  # sampler construction, including lhotse's bin estimate if any
    first_batch_s: float  # construction start -> first batch
    sampler_s: float  # construction + time inside next()
    filtered: dict[str, int]  # rejected examples by reason
    bins: Bins1D | Bins2D  # the bins this rank's sampler used (bucket i = bins[i])
    num_lhotse_buckets: int  # buckets lhotse keeps (bins + 1 with a trailing empty bucket)

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.sampler_s if self.sampler_s > 0 else math.inf


@dataclass(frozen=True)
class LhotsePeerResult:
    """The lhotse peer's batches and timings, one entry per rank."""

    config: LhotsePeerConfig
    ranks: tuple[PeerRankResult, ...]
    lhotse_version: str
    warnings: tuple[str, ...] = field(default=())  # distinct lhotse warnings seen

    @property
    def examples(self) -> int:
        return sum(r.examples for r in self.ranks)

    @property
    def examples_per_s(self) -> float:
        """All ranks' examples over all ranks' sampler time (ranks run one after another)."""
        total = sum(r.sampler_s for r in self.ranks)
        return self.examples / total if total > 0 else math.inf

    @property
    def first_batch_s(self) -> float:
        """The slowest rank's time to first batch (a DDP step waits for every rank)."""
        return max(r.first_batch_s for r in self.ranks)

    @property
    def convert_s(self) -> float:
        return sum(r.convert_s for r in self.ranks)

    @property
    def filtered(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.ranks:
            for reason, n in r.filtered.items():
                out[reason] = out.get(reason, 0) + n
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures without the batch lists."""
        return {
            "lhotse_version": self.lhotse_version,
            "config": self.config.to_json(),
            "examples": self.examples,
            "steps": [r.steps for r in self.ranks],
            "examples_per_s": self.examples_per_s,
            "first_batch_s": self.first_batch_s,
            "convert_s": self.convert_s,
            "construct_s": [r.construct_s for r in self.ranks],
            "filtered": self.filtered,
            "warnings": list(self.warnings),
        }


# --- running --------------------------------------------------------------------------------


def run_lhotse_peer(
    examples_per_rank: Sequence[Sequence[Example]], config: LhotsePeerConfig
) -> LhotsePeerResult:
    """Run lhotse's DynamicBucketingSampler for each rank over that rank's Examples."""
    if not examples_per_rank:
        raise ValueError("need the Examples of at least one rank")
    rows = [ExampleRows(examples, config.needs_tokens) for examples in examples_per_rank]
    return _run(rows, config, keep_batches=True)


def _run(
    rows_per_rank: Sequence[Iterable[Row]], config: LhotsePeerConfig, keep_batches: bool
) -> LhotsePeerResult:
    lhotse = import_lhotse()
    world = len(rows_per_rank)
    seen: dict[str, None] = {}
    results = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # record each distinct warning once
        if config.rank_mode == "round_robin":
            cuts, convert_s = _cuts_for(Concat(rows_per_rank), config)
            for rank in range(world):
                result = _run_rank(rank, world, cuts, config, keep_batches)
                results.append(_with_convert(result, convert_s if rank == 0 else 0.0))
        else:
            for rank, rows in enumerate(rows_per_rank):
                cuts, convert_s = _cuts_for(rows, config)
                result = _run_rank(rank, 1, cuts, config, keep_batches)
                results.append(_with_convert(result, convert_s))
                del cuts
    for w in caught:
        seen.setdefault(str(w.message))
    return LhotsePeerResult(config, tuple(results), lhotse.__version__, tuple(seen))


def _cuts_for(rows: Iterable[Row], config: LhotsePeerConfig) -> tuple[Any, float]:
    if not config.materialize:
        return LazyCuts(rows), 0.0
    start = time.perf_counter()
    cuts = [make_cut(r) for r in rows]
    return cuts, time.perf_counter() - start


def _with_convert(result: PeerRankResult, convert_s: float) -> PeerRankResult:
    return replace(result, convert_s=convert_s)


def _run_rank(
    rank: int, world: int, cuts: Any, config: LhotsePeerConfig, keep_batches: bool
) -> PeerRankResult:
    from lhotse.dataset.sampling.dynamic_bucketing import DynamicBucketingSampler

    t0 = time.perf_counter()
    bins = config.bins
    if bins is None and config.num_subbuckets is not None:
        bins = estimate_bins_2d(cuts, config)
    setup = SamplerSetup(bins, config)
    sampler = DynamicBucketingSampler(
        cuts,
        buffer_size=config.buffer_size,
        shuffle=config.shuffle,
        drop_last=False,
        seed=config.seed + (RANK_SEED_STRIDE * rank if config.rank_mode == "per_rank" else 0),
        sync_buckets=config.sync_buckets,
        concurrent=config.concurrent,
        world_size=world,
        rank=rank if config.rank_mode == "round_robin" else 0,
        **setup.kwargs,
    )
    if bins is None:  # lhotse estimated its own 1D bins from the head of the stream
        bins = tuple(float(b) for b in sampler.duration_bins)
        setup.edges = list(bins)
    sampler.set_epoch(config.epoch)
    filt = PeerFilter(config, setup.fits if setup.may_drop else None)
    if filt.active:
        sampler.filter(filt)
    construct_s = time.perf_counter() - t0

    batches: list[list[str]] = []
    buckets: list[int] = []
    sizes: list[int] = []
    inside = 0.0
    first_batch_s = math.nan
    it = iter(sampler)
    while True:
        t = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            inside += time.perf_counter() - t
            break
        inside += time.perf_counter() - t
        if not sizes:
            first_batch_s = time.perf_counter() - t0
        ids = [cut.id for cut in batch]
        bucket = setup.assign(next(iter(batch)))
        buckets.append(-1 if bucket is None else bucket)
        sizes.append(len(ids))
        if keep_batches:
            batches.append(ids)
    return PeerRankResult(
        rank=rank,
        batches=batches,
        buckets=buckets,
        batch_sizes=sizes,
        examples=sum(sizes),
        steps=len(sizes),
        convert_s=0.0,
        construct_s=construct_s,
        first_batch_s=first_batch_s,
        sampler_s=construct_s + inside,
        filtered=dict(filt.counts),
        bins=bins,
        num_lhotse_buckets=len(sampler.duration_bins) + 1,
    )


# --- peak RSS in a fresh subprocess ------------------------------------------------------------


@dataclass(frozen=True)
class PeerRssReport:
    """Peak RSS of a lhotse peer run in a fresh process."""

    peak_rss_mb: float  # the child's max RSS from its baseline on
    baseline_rss_mb: float  # its RSS after imports (python, torch, lhotse), before any data
    summary: dict[str, Any]  # LhotsePeerResult.summary() of the child's run

    @property
    def peak_over_baseline_mb(self) -> float:
        """What the run itself held at its peak: cuts, buffer, batches in flight."""
        return self.peak_rss_mb - self.baseline_rss_mb


def measure_lhotse_peer_rss(
    examples_per_rank: Sequence[Sequence[Example]],
    config: LhotsePeerConfig,
    timeout_s: float | None = None,
) -> PeerRssReport:
    """Run the peer on these Examples in a fresh Python process and report its peak RSS.

    The child reads (id, duration, num_tokens) per rank from temporary TSV files, streaming them
    when ``config.materialize`` is False, so its memory is lhotse's alone (texts and audio
    references are left out). Baseline = RSS right after importing torch and lhotse, where the
    kernel's peak mark is reset (``/proc/self/clear_refs``); peak = the process's own peak RSS
    (``VmHWM``) at the end. ``getrusage``'s max RSS is not used where /proc exists: it also
    keeps the peak of the fork before ``exec``, i.e. the parent's RSS. Without the reset (a
    kernel refusing it) the baseline is the import-time peak.
    """
    with tempfile.TemporaryDirectory(prefix="padless-lhotse-rss-") as tmp:
        work = Path(tmp)
        for rank, examples in enumerate(examples_per_rank):
            with open(work / f"rank{rank}.tsv", "w", newline="") as f:
                writer = csv.writer(f, delimiter="\t")
                for ex in examples:
                    if config.needs_tokens and ex.num_tokens is None:
                        raise ValueError(f"example {ex.id!r}: num_tokens is unknown")
                    tok = "" if ex.num_tokens is None else ex.num_tokens
                    writer.writerow((ex.id, repr(ex.duration), tok))
        (work / "config.json").write_text(json.dumps(config.to_json()))
        env = dict(os.environ, OMP_NUM_THREADS="1")
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "padless.peers.lhotse_run",
                str(work),
                str(len(examples_per_rank)),
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"lhotse peer subprocess failed:\n{proc.stderr[-4000:]}")
        report = json.loads((work / "result.json").read_text())
    return PeerRssReport(report["peak_rss_mb"], report["baseline_rss_mb"], report["summary"])


def _rss_child(work: Path, world: int) -> None:
    import gc

    # torch and lhotse are imported here, in the child only: they belong to its baseline.
    import torch

    torch.set_num_threads(1)
    import_lhotse()
    from lhotse.dataset.sampling import dynamic_bucketing  # noqa: F401  (part of the baseline)

    # Imports peak above their steady state: reset the mark so the peak is the run's own.
    gc.collect()
    current = status_mb("VmRSS")
    baseline = current if (current is not None and reset_peak_rss()) else peak_rss_mb()
    config = LhotsePeerConfig.from_json(json.loads((work / "config.json").read_text()))
    rows = [TsvRows(work / f"rank{r}.tsv") for r in range(world)]
    result = _run(rows, config, keep_batches=False)
    report = {
        "peak_rss_mb": peak_rss_mb(),
        "baseline_rss_mb": baseline,
        "summary": result.summary(),
    }
    (work / "result.json").write_text(json.dumps(report))


if __name__ == "__main__":
    _rss_child(Path(sys.argv[1]), int(sys.argv[2]))
