"""One call from plan to table: what ``padless oomptimize`` and the benchmarks run."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from padless.batchsize.config import OomptimizeConfig
from padless.batchsize.cpu import CpuProbe
from padless.batchsize.cuda import CudaProbe, device_budget
from padless.batchsize.report import Comparison, compare
from padless.batchsize.search import (
    BucketResult,
    BucketShape,
    Measurement,
    MemoryProbe,
    SearchResult,
    search,
)
from padless.batchsize.simulate import SimulateProbe
from padless.batchsize.table import Bucket, bucket_shapes, read_plan, table_json
from padless.batchsize.workload import AEDWorkload


@dataclass(frozen=True)
class Outcome:
    buckets: list[Bucket]
    result: SearchResult
    comparison: Comparison
    document: dict[str, Any]  # the padless.batch_sizes table, report included
    budget_bytes: int


@contextlib.contextmanager
def open_probe(config: OomptimizeConfig) -> Iterator[MemoryProbe]:
    workload = AEDWorkload.load(config.model)
    if config.probe == "simulate":
        assert config.budget_bytes is not None
        with SimulateProbe(workload, config.step, config.budget_bytes, config.simulate) as sim:
            yield sim
    elif config.probe == "cpu":
        assert config.budget_bytes is not None
        yield CpuProbe(workload, config.step, config.budget_bytes)
    else:
        budget = config.budget_bytes or device_budget(config.memory_fraction)
        yield CudaProbe(workload, config.step, budget)


def oomptimize(
    plan: str | Path,
    config: OomptimizeConfig,
    on_trial: Callable[[BucketShape, Measurement], None] | None = None,
    on_bucket: Callable[[BucketResult], None] | None = None,
) -> Outcome:
    """Search the batch sizes of every bucket of ``plan`` and compare with the heuristic."""
    buckets = read_plan(plan)
    bucket_shapes(buckets, config.tokens_per_second)  # fail on open bounds before any work
    with open_probe(config) as probe:
        return search_plan(plan, probe, config, on_trial, on_bucket)


def search_plan(
    plan: str | Path,
    probe: MemoryProbe,
    config: OomptimizeConfig,
    on_trial: Callable[[BucketShape, Measurement], None] | None = None,
    on_bucket: Callable[[BucketResult], None] | None = None,
) -> Outcome:
    """`oomptimize` with a probe the caller opened (and may reuse)."""
    buckets = read_plan(plan)
    shapes = bucket_shapes(buckets, config.tokens_per_second)
    result = search(shapes, probe, config.search, on_trial=on_trial, on_bucket=on_bucket)
    comparison = compare(buckets, result.buckets)
    meta = {
        "model": config.model,
        "probe": config.probe,
        "dtype": config.step.precision,
        "memory_budget_bytes": probe.budget_bytes,
        "tolerance": config.search.tolerance,
        "margin": config.search.margin,
        "plan": str(plan),
        **_probe_details(probe),
        "report": comparison.to_json(),
    }
    document = table_json(buckets, result, meta)
    return Outcome(buckets, result, comparison, document, probe.budget_bytes)


def _probe_details(probe: MemoryProbe) -> dict[str, Any]:
    if isinstance(probe, SimulateProbe):
        return {
            "simulate": asdict(probe.config),
            "steps_simulated": probe.steps_simulated,
            "simulation_seconds": round(probe.simulation_seconds, 1),
        }
    return {}
