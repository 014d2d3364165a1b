"""Bucket bin estimation: where the edges between buckets go.

Two estimators, both working on a *random* sample of lengths (`Reservoir`; lhotse estimates on
the first N examples of the stream, which is biased whenever the stream is ordered):

- ``equal-duration`` (the paper's): each bin holds the same cumulative duration, so with a
  duration budget every bucket fills at the same rate in batches. Short utterances then share
  very few, wide bins, where most of the padding of a run comes from.
- ``optimal``: edges that minimise the expected padding when every example is padded to its
  bin's upper edge, ``sum(count_bin * edge_bin) - sum(x)``, by dynamic programming over a grid
  of candidate edges (the sample's quantiles). A floor on each bin's share of the sample mass
  (``min_share``, a fraction of an equal share) keeps every bucket fed, since a bucket that
  receives almost nothing is rarely ready and its examples wait in the buffer.

Token sub-bins of a 2D plan use the same two estimators on the tokens of each duration bin.
All edges are *upper* edges: bin ``i`` holds ``edges[i-1] < x <= edges[i]``.
"""

from __future__ import annotations

import numpy as np

from padless.sampling.config import BIN_ESTIMATORS, BinEstimator


class Reservoir:
    """A uniform random sample of at most ``size`` (duration, tokens) pairs from a stream.

    Every item gets a random key and the ``size`` smallest keys are kept, which is a uniform
    sample without replacement of everything offered. Work is vectorised per chunk: offering
    ``n`` items costs one random draw of ``n`` keys and, now and then, one ``argpartition``.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        if size < 1:
            raise ValueError(f"reservoir size must be >= 1, got {size}")
        self.size = size
        self.seen = 0
        self._rng = np.random.default_rng(seed)
        self._keys: list[np.ndarray] = []
        self._dur: list[np.ndarray] = []
        self._tok: list[np.ndarray] = []
        self._held = 0

    def add(self, durations: np.ndarray, tokens: np.ndarray) -> None:
        n = len(durations)
        if n == 0:
            return
        self.seen += n
        self._keys.append(self._rng.random(n))
        self._dur.append(np.asarray(durations, dtype=np.float64))
        self._tok.append(np.asarray(tokens, dtype=np.int64))
        self._held += n
        if self._held >= 2 * self.size:
            self._shrink()

    def _shrink(self) -> None:
        keys = np.concatenate(self._keys)
        dur = np.concatenate(self._dur)
        tok = np.concatenate(self._tok)
        if len(keys) > self.size:
            keep = np.argpartition(keys, self.size - 1)[: self.size]
            keys, dur, tok = keys[keep], dur[keep], tok[keep]
        self._keys, self._dur, self._tok = [keys], [dur], [tok]
        self._held = len(keys)

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """The sample as ``(durations (n,), tokens (n,))`` in random (key) order."""
        if not self._keys:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        self._shrink()
        order = np.argsort(self._keys[0], kind="stable")
        return self._dur[0][order], self._tok[0][order]


def equal_mass_edges(values: np.ndarray, num_bins: int, top: float | None = None) -> np.ndarray:
    """Upper edges of ``num_bins`` bins holding equal cumulative ``values`` (duration or tokens).

    The last edge is ``top`` (e.g. the max-duration filter) or the sample maximum. Edges are
    non-decreasing; a degenerate sample (many equal values) can leave a bin empty.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    if len(x) == 0:
        raise ValueError("cannot estimate bins from an empty sample")
    cum = np.cumsum(x)
    targets = cum[-1] * np.arange(1, num_bins) / num_bins
    inner = x[np.minimum(np.searchsorted(cum, targets, side="left"), len(x) - 1)]
    last = float(x[-1]) if top is None else max(float(top), float(x[-1]))
    return np.append(inner, last)


def optimal_edges(
    values: np.ndarray,
    num_bins: int,
    top: float | None = None,
    *,
    min_share: float = 0.25,
    grid_size: int = 768,
) -> np.ndarray:
    """Upper edges of ``num_bins`` bins minimising the padding to each bin's upper edge.

    ``min_share``: every bin holds at least ``min_share / num_bins`` of the sample's cumulative
    value (0 disables the floor). ``grid_size``: candidate edges (sample quantiles); the DP costs
    ``num_bins * grid_size**2`` float operations (about 0.3 s for 60 bins).
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    if len(x) == 0:
        raise ValueError("cannot estimate bins from an empty sample")
    grid = np.unique(
        np.quantile(x, np.linspace(0.0, 1.0, grid_size + 1)[1:], method="inverted_cdf")
    )
    grid[-1] = x[-1]
    count = np.searchsorted(x, grid, side="right").astype(np.float64)  # (G,) items <= grid[j]
    mass = np.concatenate([[0.0], np.cumsum(x)])[count.astype(np.int64)]  # (G,) their sum
    g = len(grid)
    k_bins = min(num_bins, g)
    floor = min_share * mass[-1] / num_bins if min_share > 0 else 0.0
    # cost[i, j]: items in (grid[i], grid[j]] padded to grid[j]; inf where not a valid bin.
    pad_to = (count[None, :] - count[:, None]) * grid[None, :]  # (G, G)
    valid = np.triu(np.ones((g, g), dtype=bool), k=1) & (count[None, :] > count[:, None])
    if floor > 0:
        valid &= (mass[None, :] - mass[:, None]) >= floor
    pad_to[~valid] = np.inf
    best = count * grid  # one bin from the bottom up to grid[j]
    best[mass < floor] = np.inf
    back = np.zeros((k_bins, g), dtype=np.int64)
    for k in range(1, k_bins):
        total = best[:, None] + pad_to  # (G, G): bins 0..k-1 end at i, bin k is (i, j]
        back[k] = np.argmin(total, axis=0)
        best = total[back[k], np.arange(g)]
    if not np.isfinite(best[-1]):
        raise ValueError(
            f"no {num_bins} bins satisfy min_share={min_share}; lower it or the bin count"
        )
    edges = [g - 1]
    for k in range(k_bins - 1, 0, -1):
        edges.append(int(back[k][edges[-1]]))
    out = grid[np.array(edges[::-1])]
    if k_bins < num_bins:  # fewer distinct values than bins: repeat the top edge (empty bins)
        out = np.concatenate([out, np.full(num_bins - k_bins, out[-1])])
    if top is not None:
        out[-1] = max(float(top), out[-1])
    return out


def estimate_edges(
    values: np.ndarray,
    num_bins: int,
    estimator: BinEstimator,
    top: float | None = None,
    *,
    min_share: float = 0.25,
) -> np.ndarray:
    """Upper edges by the named estimator (see the module docstring)."""
    if num_bins < 1:
        raise ValueError(f"need at least 1 bin, got {num_bins}")
    if num_bins == 1:
        x = np.asarray(values, dtype=np.float64)
        return np.array([max(float(x.max()), top or 0.0)])
    if estimator == "equal-duration":
        return equal_mass_edges(values, num_bins, top)
    if estimator == "optimal":
        return optimal_edges(values, num_bins, top, min_share=min_share)
    raise ValueError(f"unknown bin estimator {estimator!r}; choose from {BIN_ESTIMATORS}")


def padding_to_edges(values: np.ndarray, edges: np.ndarray) -> float:
    """Fraction of padding when each value is padded to its bin's upper edge (values above
    the last edge are padded to themselves)."""
    x = np.asarray(values, dtype=np.float64)
    idx = np.searchsorted(edges, x, side="left")
    padded = np.where(idx < len(edges), edges[np.minimum(idx, len(edges) - 1)], x)
    total = float(padded.sum())
    return 1.0 - float(x.sum()) / total if total > 0 else 0.0
