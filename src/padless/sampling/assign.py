"""Bucket assignment: which bucket of a plan an example goes to, for whole chunks at once.

- ``strict`` (the paper's baseline 2D rule): duration bin first, then the token sub-bin of that
  duration bin; an example above the last sub-bin's maximum is discarded (``strict_tokens``).
- ``flexible`` (the paper's fix): the first bucket, in plan order, whose upper bounds fit both
  lengths; an example with an unusually long transcript moves to a bucket of longer utterances,
  paying some input padding instead of being dropped.

In a 1D plan both modes assign by duration only (token bounds are informational there). An
example above the last duration edge fits no bucket (``outside_plan``); with the plan's
max-duration filter on, none reaches the assigner.

Both rules are one or two ``np.searchsorted`` calls per chunk: duration bins by their upper
edges; sub-bins through keys ``bin * 2**40 + tokens`` against the concatenated per-bin edge
arrays, which are sorted because each bin's block lies above the previous block.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from padless.sampling.config import ASSIGN_MODES, AssignMode
from padless.sampling.plan import BucketPlan

_BLOCK = np.int64(1) << np.int64(40)  # larger than any token count or edge
_TOKEN_CAP = np.int64(_BLOCK - 1)

#: Reasons an example is not assigned to any bucket.
ASSIGN_REASONS = ("outside_plan", "strict_tokens")


class BucketAssigner:
    """Maps (duration, tokens) chunks to bucket indices; -1 marks an unassigned example."""

    def __init__(self, plan: BucketPlan, mode: AssignMode = "flexible") -> None:
        if mode not in ASSIGN_MODES:
            raise ValueError(f"unknown assignment mode {mode!r}; choose from {ASSIGN_MODES}")
        self.plan = plan
        self.mode = mode
        self.num_buckets = len(plan)
        self._s = plan.num_subbuckets
        self._dur_edges = plan.duration_edges  # (K,)
        tok_edges = plan.token_edges  # (K, S), inf where open
        capped = np.where(np.isfinite(tok_edges), tok_edges, float(_TOKEN_CAP)).astype(np.int64)
        k = plan.num_duration_bins
        if mode == "strict":
            # Block i holds bin i's sub-bin edges; the search lands in block i or past it.
            self._keys = (np.arange(k, dtype=np.int64)[:, None] * _BLOCK + capped).reshape(-1)
        else:
            # Block i lists, for buckets j >= i*S in order, the running max of their token
            # edges: the first entry >= t is the first bucket from bin i on that fits t.
            flat = capped.reshape(-1)
            blocks: list[np.ndarray] = []
            starts: list[int] = []
            for i in range(k):
                starts.append(sum(len(b) for b in blocks))
                blocks.append(i * _BLOCK + np.maximum.accumulate(flat[i * self._s :]))
            self._keys = np.concatenate(blocks)
            self._block_start = np.array(starts, dtype=np.int64)
            self._block_len = np.array([len(b) for b in blocks], dtype=np.int64)

    def assign(
        self, durations: np.ndarray, tokens: np.ndarray, counts: Counter[str] | None = None
    ) -> np.ndarray:
        """Bucket index per example, (N,) int64, -1 where unassigned (counted in ``counts``)."""
        dur_bin = np.searchsorted(self._dur_edges, durations, side="left")
        outside = dur_bin >= len(self._dur_edges)
        dur_bin = np.minimum(dur_bin, len(self._dur_edges) - 1)
        if self._s == 1:
            out = dur_bin.astype(np.int64)
            out[outside] = -1
            if counts is not None and outside.any():
                counts["outside_plan"] += int(np.count_nonzero(outside))
            return out
        key = dur_bin.astype(np.int64) * _BLOCK + np.minimum(tokens.astype(np.int64), _TOKEN_CAP)
        pos = np.searchsorted(self._keys, key, side="left")
        if self.mode == "strict":
            misfit = (pos >= (dur_bin + 1) * self._s) & ~outside
            out = pos
            reason = "strict_tokens"
        else:
            start = self._block_start[dur_bin]
            offset = pos - start
            misfit = (offset >= self._block_len[dur_bin]) & ~outside
            out = dur_bin * self._s + offset
            reason = "outside_plan"
        out = out.astype(np.int64)
        out[outside | misfit] = -1
        if counts is not None:
            if outside.any():
                counts["outside_plan"] += int(np.count_nonzero(outside))
            if misfit.any():
                counts[reason] += int(np.count_nonzero(misfit))
        return out
