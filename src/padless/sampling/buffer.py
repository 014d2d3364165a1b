"""The sampler's buffer: examples partitioned by bucket (and, for sorted batching, by output
length within each bucket), ready to be cut into batches.

Entries are plain tuples ``(cost, duration, tokens, item)`` (fields `COST` ... `ITEM`; tuples
because a named tuple costs a Python call each) held in Python lists:

- ``random`` batching: one list per bucket. A random batch takes entries by swap-remove (O(1)
  each), lhotse's "shuffle the bucket, take a prefix" without an O(bucket) shuffle per batch.
- ``sorted`` batching: each bucket is split into ``lanes`` lists by output length, at the
  bucket's token quantiles from the plan's sample (so lanes hold similar shares). A batch is
  cut from consecutive lanes (see `padless.sampling.engine`), oldest entries first within a
  lane. Lanes give nearly the token padding of a fully sorted bucket at the cost of one append
  per arriving example, where keeping every bucket sorted costs a bisection and two list
  inserts (measured: ~3x more per example).

Why lists and not numpy arrays: a step touches one bucket and ~10-300 examples, where every
numpy call costs microseconds; arriving chunks are still measured, filtered, assigned to
buckets and lanes with numpy (one `searchsorted` for all lanes of all buckets). Per-bucket
counts and integer cost sums are numpy arrays, so readiness of all buckets is one vectorised
comparison when the drawn bucket is not ready.

Every order here is a deterministic function of the history; with the lists saved in order, a
restored buffer is identical, which exact resume relies on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np

#: Fields of an entry.
COST: Final = 0
DUR: Final = 1
TOK: Final = 2
ITEM: Final = 3
Entry = tuple[int, float, int, Any]

_BLOCK = np.int64(1) << np.int64(40)  # above any token count


class BucketBuffer:
    """Entry lists per (bucket, lane), with per-bucket counts and cost sums.

    ``lane_edges``: (num_buckets, lanes - 1) inner token edges per bucket (non-decreasing);
    None for one lane per bucket.
    """

    def __init__(self, num_buckets: int, lane_edges: np.ndarray | None = None) -> None:
        self.num_buckets = num_buckets
        self.lanes = 1 if lane_edges is None else lane_edges.shape[1] + 1
        self.lists: list[list[Entry]] = [[] for _ in range(num_buckets * self.lanes)]
        self.counts = np.zeros(num_buckets, dtype=np.int64)
        self.cost_sums = np.zeros(num_buckets, dtype=np.int64)
        self.size = 0
        self._keys: np.ndarray | None = None
        if lane_edges is not None:
            edges = np.minimum(np.asarray(lane_edges, dtype=np.int64), _BLOCK - 1)
            self._keys = (np.arange(num_buckets, dtype=np.int64)[:, None] * _BLOCK + edges).reshape(
                -1
            )

    def lane_index(self, bucket: np.ndarray, tok: np.ndarray) -> np.ndarray:
        """Flat list index ``bucket * lanes + lane`` of each entry, (n,)."""
        if self._keys is None:
            return bucket
        key = bucket * _BLOCK + np.minimum(tok, _BLOCK - 1)
        pos = np.searchsorted(self._keys, key, side="right")  # lands in the bucket's block
        return bucket * self.lanes + (pos - bucket * (self.lanes - 1))

    def add(
        self,
        items: Sequence[Any],
        dur: np.ndarray,
        tok: np.ndarray,
        cost: np.ndarray,
        bucket: np.ndarray,
    ) -> None:
        n = len(items)
        if n == 0:
            return
        lists = self.lists
        rows = zip(cost.tolist(), dur.tolist(), tok.tolist(), items, strict=True)
        for i, row in zip(self.lane_index(bucket, tok).tolist(), rows, strict=True):
            lists[i].append(row)
        self.size += n
        k = self.num_buckets
        self.counts += np.bincount(bucket, minlength=k)
        # float64 sums of int64 costs are exact below 2**53 (a chunk's costs stay far below).
        self.cost_sums += np.bincount(bucket, weights=cost, minlength=k).astype(np.int64)

    def removed(self, bucket: int, n: int, cost: int) -> None:
        """Book-keeping after ``n`` entries of total ``cost`` left ``bucket``."""
        self.size -= n
        self.counts[bucket] -= n
        self.cost_sums[bucket] -= cost

    # ------------------------------------------------------------------ state

    def restore(self, lists: Sequence[Sequence[Entry]]) -> None:
        """Put back every (bucket, lane) list, in order."""
        if len(lists) != len(self.lists):
            raise ValueError(f"buffer state has {len(lists)} lists, expected {len(self.lists)}")
        self.lists = [list(x) for x in lists]
        per_bucket = [
            self.lists[b * self.lanes : (b + 1) * self.lanes] for b in range(self.num_buckets)
        ]
        self.counts = np.array([sum(len(x) for x in lanes) for lanes in per_bucket], dtype=np.int64)
        self.cost_sums = np.array(
            [sum(e[COST] for x in lanes for e in x) for lanes in per_bucket], dtype=np.int64
        )
        self.size = int(self.counts.sum())
