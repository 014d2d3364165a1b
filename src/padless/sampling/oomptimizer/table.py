"""Plan in, batch-size table out: the files around the search.

Reads ``plan.json`` (format ``padless.bucket_plan`` v1, written by ``padless plan``) and writes
the per-bucket table the sampler's table policy reads::

    {"format": "padless.batch_sizes", "version": 1,
     "buckets": [{"index": i, "max_duration": b, "max_tokens": d, "batch_size": n,
                  "trial_tokens": d, "max_fitting_batch_size": m, "peak_memory_bytes": p,
                  "peak_memory_measured": bool, "batch_audio_s": n * b, "trials": k}, ...],
     "model": ..., "probe": ..., "dtype": ..., "memory_budget_bytes": ..., "tolerance": ...,
     "margin": ..., "search_seconds": ..., "report": {...}}

``peak_memory_bytes`` is the peak at ``batch_size``: measured when a trial ran at exactly that
size, otherwise read off the affine fit through the bucket's trials (``peak_memory_measured``
says which). ``batch_audio_s`` is the padded audio per batch at the bucket's maximum duration.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from padless.sampling.oomptimizer.search import BucketShape, SearchResult

PLAN_FORMAT = "padless.bucket_plan"
TABLE_FORMAT = "padless.batch_sizes"
TABLE_VERSION = 1


class PlanFileError(ValueError):
    """A plan file the search cannot use; the message names the file and the problem."""


@dataclass(frozen=True)
class PlanBucket:
    """The fields of a plan bucket the search and its report use."""

    index: int
    min_duration: float
    max_duration: float
    min_tokens: int | None  # None: open bound
    max_tokens: int | None  # None: open bound
    sample_count: int  # examples of the plan's sample in this bucket (0 if not recorded)
    sample_duration: float  # their total duration in seconds

    @property
    def mean_duration(self) -> float | None:
        return self.sample_duration / self.sample_count if self.sample_count else None


def read_plan(path: str | Path) -> list[PlanBucket]:
    """The buckets of a ``padless.bucket_plan`` file, in plan order."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise PlanFileError(f"{path}: cannot read the plan: {err}") from err
    if not isinstance(data, Mapping) or data.get("format") != PLAN_FORMAT:
        raise PlanFileError(f"{path}: not a bucket plan (expected format {PLAN_FORMAT!r})")
    if data.get("version") != 1:
        raise PlanFileError(f"{path}: unsupported plan version {data.get('version')!r}")
    raw = data.get("buckets")
    if not isinstance(raw, list) or not raw:
        raise PlanFileError(f"{path}: the plan has no buckets")
    buckets = []
    for position, b in enumerate(raw):
        try:
            bucket = PlanBucket(
                index=int(b["index"]),
                min_duration=float(b["min_duration"]),
                max_duration=float(b["max_duration"]),
                min_tokens=None if b.get("min_tokens") is None else int(b["min_tokens"]),
                max_tokens=None if b.get("max_tokens") is None else int(b["max_tokens"]),
                sample_count=int(b.get("sample_count", 0)),
                sample_duration=float(b.get("sample_duration", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise PlanFileError(f"{path}: bucket #{position} is malformed: {err!r}") from err
        if bucket.index != position:
            raise PlanFileError(f"{path}: bucket #{position} has index {bucket.index}")
        if not 0 < bucket.max_duration < math.inf:
            raise PlanFileError(f"{path}: bucket {position} has no finite max_duration")
        buckets.append(bucket)
    return buckets


def bucket_shapes(
    buckets: Sequence[PlanBucket], tokens_per_second: float | None = None
) -> list[BucketShape]:
    """Trial shapes: each bucket's maximum duration and maximum tokens.

    A bucket with an open token bound needs ``tokens_per_second``: its shape then has
    ``ceil(max_duration * tokens_per_second)`` tokens (e.g. the TPS filter's threshold).
    """
    shapes = []
    for b in buckets:
        tokens = b.max_tokens
        if tokens is None:
            if tokens_per_second is None:
                raise PlanFileError(
                    f"bucket {b.index} has no max_tokens; pass tokens_per_second "
                    "(--tokens-per-second) to bound its transcripts"
                )
            tokens = math.ceil(b.max_duration * tokens_per_second)
        shapes.append(BucketShape(b.max_duration, tokens, index=b.index))
    return shapes


def table_json(
    plan: Sequence[PlanBucket], result: SearchResult, meta: Mapping[str, Any]
) -> dict[str, Any]:
    """The ``padless.batch_sizes`` document for ``result`` (``meta``: run description).

    Edges are the plan's own (the sampler checks them); ``trial_tokens`` is the token count
    the bucket was tested at, which differs from ``max_tokens`` only for an open bound.
    """
    buckets = [
        {
            "index": b.index,
            "max_duration": b.max_duration,
            "max_tokens": b.max_tokens,
            "trial_tokens": r.shape.max_tokens,
            "batch_size": r.batch_size,
            "max_fitting_batch_size": r.max_fitting,
            "capped": r.capped,
            "peak_memory_bytes": None if r.peak_bytes is None else round(r.peak_bytes),
            "peak_memory_measured": r.peak_measured,
            "batch_audio_s": round(r.batch_audio_seconds, 3),
            "trials": len(r.trials),
        }
        for b, r in zip(plan, result.buckets, strict=True)
    ]
    return {
        "format": TABLE_FORMAT,
        "version": TABLE_VERSION,
        "buckets": buckets,
        **meta,
        "search_seconds": round(result.seconds, 2),
        "trials": result.num_trials,
    }


def write_json(path: str | Path, document: Mapping[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n")
    return path
