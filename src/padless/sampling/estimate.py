"""Estimating a bucket plan: edges from a sample of lengths (`estimate_plan`), the sample drawn
from a stream of examples (`plan_from_examples`), and the padding the plan implies if every
example were padded to its bucket's edges (`expected_padding`, computed with the assigner).

Separate from `padless.sampling.plan` (the plan itself, its file format) so that the assigner
can read plans and estimation can use the assigner without an import cycle.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from itertools import islice
from typing import Any

import numpy as np

from padless.data.errors import NoExamplesError
from padless.data.example import Example
from padless.sampling.assign import BucketAssigner
from padless.sampling.bins import Reservoir, estimate_edges
from padless.sampling.config import PLAN_SAMPLE_SIZE, PlanConfig
from padless.sampling.filters import FilterConfig
from padless.sampling.lengths import ExampleLengths, LengthFn
from padless.sampling.plan import NUM_QUANTILES, Bucket, BucketPlan, PlanError

log = logging.getLogger("padless.sampling")


def estimate_plan(
    durations: np.ndarray,
    tokens: np.ndarray,
    config: PlanConfig,
    filters: FilterConfig | None = None,
    *,
    sample_info: Mapping[str, Any] | None = None,
    filtered: Mapping[str, int] | None = None,
) -> BucketPlan:
    """Estimate a plan from a sample of *filtered* lengths: durations (n,) s, tokens (n,)."""
    filters = filters or FilterConfig()
    dur = np.asarray(durations, dtype=np.float64)
    tok = np.asarray(tokens, dtype=np.int64)
    if len(dur) == 0:
        raise NoExamplesError("no examples left to estimate a plan from (all filtered?)")
    if len(dur) == 1:
        log.warning("plan: estimated from a single example; every bucket but one is empty")
    k, s = config.num_buckets, config.num_subbuckets
    try:
        dur_edges = estimate_edges(
            dur, k, config.bins, filters.max_duration, min_share=config.min_share
        )
    except ValueError as err:  # e.g. min_share infeasible with a few far outliers
        raise PlanError(f"cannot estimate {k} duration bins: {err}") from None
    dur_edges, k = _merge_empty_bins(dur, dur_edges)
    lower = 0.0 if filters.min_duration is None else filters.min_duration
    dur_bin = np.minimum(np.searchsorted(dur_edges, dur, side="left"), k - 1)
    buckets: list[Bucket] = []
    for i in range(k):
        in_bin = dur_bin == i
        bin_tok = tok[in_bin]
        lo_d = lower if i == 0 else float(dur_edges[i - 1])
        if s == 1:
            top = int(bin_tok.max()) if len(bin_tok) else None
            tok_edges: list[int | None] = [top]
        elif len(bin_tok) == 0:
            tok_edges = [None] * s
        else:
            tok_edges = [
                int(e) for e in estimate_edges(bin_tok, s, config.bins, min_share=config.min_share)
            ]
        for j in range(s):
            hi_t = tok_edges[j]
            lo_t = None if (s == 1 or j == 0) else tok_edges[j - 1]
            if s > 1 and len(bin_tok):
                sel = (bin_tok <= (hi_t if hi_t is not None else np.inf)) & (
                    bin_tok > (lo_t if lo_t is not None else -np.inf)
                )
                members_d, members_t = dur[in_bin][sel], bin_tok[sel]
            else:
                members_d, members_t = dur[in_bin], bin_tok
            buckets.append(
                Bucket(
                    index=i * s + j,
                    min_duration=lo_d,
                    max_duration=float(dur_edges[i]),
                    min_tokens=lo_t,
                    max_tokens=hi_t,
                    **_sample_fields(members_d, members_t),
                )
            )
    empty = [b.index for b in buckets if b.sample_count == 0]
    if empty and len(dur) > 1:
        log.warning(
            "plan: bucket(s) %s hold no example of the sample (a duration bin with fewer "
            "distinct token counts than sub-buckets); they will get no batches",
            ", ".join(map(str, empty)),
        )
    plan = BucketPlan(
        buckets=tuple(buckets),
        num_duration_bins=k,
        num_subbuckets=s,
        bins=config.bins,
        filters=filters,
        sample=dict(sample_info or {}, size=len(dur), min_share=config.min_share),
        filtered=dict(filtered or {}),
    )
    return replace(plan, expected_padding=expected_padding(plan, dur, tok))


def _merge_empty_bins(dur: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, int]:
    """Duration edges without bins that hold no sample example (zero-width bins, from more
    bins than the data have distinct durations, or gaps): each empty bin joins the next
    non-empty bin above it, and empty bins at the top join the highest non-empty one. An
    empty bucket would get no batches, and the batch-size search would have nothing to size."""
    k = len(edges)
    counts = np.bincount(np.minimum(np.searchsorted(edges, dur, side="left"), k - 1), minlength=k)
    if counts.all():
        return edges, k
    kept = np.flatnonzero(counts)
    merged = edges[kept].copy()
    merged[-1] = edges[-1]
    log.warning(
        "plan: %d of %d duration bins hold no example of the sample (more bins than distinct "
        "durations?); merged into their neighbours: %d bins",
        k - len(kept),
        k,
        len(kept),
    )
    return merged, len(kept)


def _sample_fields(dur: np.ndarray, tok: np.ndarray) -> dict[str, Any]:
    if len(dur) == 0:
        return {}
    levels = np.linspace(0.0, 1.0, NUM_QUANTILES)
    return {
        "sample_count": len(dur),
        "sample_duration": float(dur.sum()),
        "sample_tokens": int(tok.sum()),
        "duration_quantiles": tuple(round(float(x), 4) for x in np.quantile(dur, levels)),
        "token_quantiles": tuple(round(float(x), 2) for x in np.quantile(tok, levels)),
    }


def expected_padding(
    plan: BucketPlan, durations: np.ndarray, tokens: np.ndarray
) -> dict[str, float]:
    """Padding if every example were padded to its bucket's upper edges (flexible assignment;
    open token bounds count as padding to the example itself). A bound, not a measurement:
    batches are padded to their own maximum, which is lower."""
    dur = np.asarray(durations, dtype=np.float64)
    tok = np.asarray(tokens, dtype=np.int64)
    idx = BucketAssigner(plan, "flexible").assign(dur, tok)
    ok = idx >= 0
    max_d = np.array([b.max_duration for b in plan.buckets])[idx[ok]]
    max_t = plan.token_edges.reshape(-1)[idx[ok]]
    max_t = np.where(np.isfinite(max_t), max_t, tok[ok])
    if not plan.is_2d:  # informational bounds: pad to the bin's sample maximum
        max_t = np.maximum(max_t, tok[ok])
    return {
        "audio": round(1.0 - float(dur[ok].sum()) / float(max_d.sum()), 5),
        "token": round(1.0 - float(tok[ok].sum()) / float(max_t.sum()), 5),
    }


def plan_from_examples(
    examples: Iterable[Example],
    config: PlanConfig,
    filters: FilterConfig | None = None,
    *,
    lengths: LengthFn | None = None,
    sample_size: int = PLAN_SAMPLE_SIZE,
    seed: int = 0,
    chunk_size: int = 4096,
    on_chunk: Callable[[int], None] | None = None,
    sample_info: Mapping[str, Any] | None = None,
) -> tuple[BucketPlan, np.ndarray, np.ndarray]:
    """Read every example once, filter it, keep a uniform random sample of ``sample_size``
    kept examples (`Reservoir`) and estimate the plan on it. ``on_chunk(n)`` reports progress.
    Filter counts cover the whole stream. Returns the plan and the sample (durations, tokens)."""
    filters = filters or FilterConfig()
    lengths = lengths or ExampleLengths()
    reservoir = Reservoir(sample_size, seed)
    counts: Counter[str] = Counter()
    it = iter(examples)
    seen = 0
    while chunk := list(islice(it, chunk_size)):
        dur, tok = lengths(chunk)
        keep = filters.apply(dur, tok, counts)
        reservoir.add(dur[keep], tok[keep])
        seen += len(chunk)
        if on_chunk is not None:
            on_chunk(len(chunk))
    dropped = sum(counts.values())
    if seen == 0:
        raise NoExamplesError.empty((sample_info or {}).get("manifests") or "the input")
    if reservoir.seen == 0:
        raise NoExamplesError(f"all {seen:,} examples were filtered ({_reasons(counts)})")
    if 2 * dropped > seen:
        log.warning(
            "plan: %s of %s examples (%.0f%%) were filtered: %s",
            f"{dropped:,}",
            f"{seen:,}",
            100 * dropped / seen,
            _reasons(counts),
        )
    dur, tok = reservoir.sample()
    info = dict(sample_info or {}, seed=seed, requested=sample_size, examples_seen=seen)
    info["examples_kept"] = reservoir.seen
    plan = estimate_plan(dur, tok, config, filters, sample_info=info, filtered=dict(counts))
    return plan, dur, tok


def _reasons(counts: Mapping[str, int]) -> str:
    """ "3 max_duration, 1 tps_max": counts by reason, largest first."""
    return ", ".join(f"{n:,} {reason}" for reason, n in Counter(counts).most_common())
