"""Plan in, batch-size table out: the files around the search.

Reads ``plan.json`` (format ``padless.bucket_plan`` v1, written by ``padless plan``) through
`padless.sampling.plan.BucketPlan` and writes the per-bucket table the sampler's table policy
reads::

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
from pathlib import Path
from typing import Any

from padless.batchsize.search import BucketShape, SearchResult
from padless.sampling.plan import Bucket, BucketPlan, PlanError

TABLE_FORMAT = "padless.batch_sizes"
TABLE_VERSION = 1


def read_plan(path: str | Path) -> list[Bucket]:
    """The buckets of a ``padless.bucket_plan`` file (`BucketPlan.load` checks it)."""
    return list(BucketPlan.load(path).buckets)


def bucket_shapes(
    buckets: Sequence[Bucket], tokens_per_second: float | None = None
) -> list[BucketShape]:
    """Trial shapes: each bucket's maximum duration and maximum tokens.

    A bucket with an open token bound needs ``tokens_per_second``: its shape then has
    ``ceil(max_duration * tokens_per_second)`` tokens (e.g. the TPS filter's threshold).
    """
    shapes = []
    for b in buckets:
        tokens = b.max_tokens
        if tokens is None:
            if b.sample_count == 0 and tokens_per_second is None:
                raise PlanError(
                    f"bucket {b.index} is empty (no example of the plan's sample), so it has "
                    "no token bound to size: plan with fewer buckets, or pass "
                    "--tokens-per-second"
                )
            if tokens_per_second is None:
                raise PlanError(
                    f"bucket {b.index} has no max_tokens; pass tokens_per_second "
                    "(--tokens-per-second) to bound its transcripts"
                )
            tokens = math.ceil(b.max_duration * tokens_per_second)
        shapes.append(BucketShape(b.max_duration, tokens, index=b.index))
    return shapes


def table_json(
    plan: Sequence[Bucket], result: SearchResult, meta: Mapping[str, Any]
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
