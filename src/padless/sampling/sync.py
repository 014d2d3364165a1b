"""Bucket choice: which bucket the next batch comes from, identically on every rank.

Every step draws a bucket from an RNG seeded from (seed, epoch) only, so with ``sync`` all
ranks draw the same sequence without talking to each other; example order within buckets uses
per-rank RNGs (see `padless.sampling.engine`). When the drawn bucket has no full batch on a rank,
that rank takes the *nearest* bucket (by index) that has one; a tie between the bucket below
and the one above is broken by a bit drawn from the same shared RNG, so ranks that fall back
from the same bucket fall back the same way. Draws never depend on what happens on a rank, so
the shared streams never drift apart.

Two draws, each a small class (`InflowDraw`, `UniformDraw`) with a ``block`` of draws:

- ``uniform`` (lhotse's): every bucket equally likely. Buckets fill at different rates, so fill
  levels random-walk and the share of steps where the drawn bucket is ready everywhere decays
  over an epoch.
- ``inflow`` (default): bucket ``i`` is drawn at the rate batches flow into it,
  ``q_i ∝ occupancy_i / E[batch size_i]`` (from the plan's sample and the batch-size policy,
  so identical on every rank), *stratified* rather than independent: draws come in blocks of
  ``BLOCK`` steps holding bucket ``i`` about ``BLOCK * q_i`` times (systematic sampling of the
  quotas plus the credit carried over from earlier blocks), in a random order. Draw counts then
  track ``t * q_i`` within a few draws at every step ``t`` (independent draws drift by
  ``sqrt(t * q_i)``), so fill levels stay level and the drawn bucket is ready on every rank for
  the whole epoch. Drawing a block costs a few numpy calls and a shuffle: well under a
  microsecond per step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

#: Steps per block of draws.
BLOCK = 128


@dataclass(frozen=True)
class InflowDraw:
    """Each bucket drawn at the rate batches flow into it, stratified in blocks (see above)."""

    kind: ClassVar[str] = "inflow"

    def block(
        self, rng: random.Random, quota: np.ndarray, credits: np.ndarray
    ) -> tuple[list[int], np.ndarray]:
        """The next ``BLOCK`` draws and the credits carried to the following block."""
        k = len(quota)
        want = credits + BLOCK * quota  # (K,) draws due by the end of the block
        cum = np.maximum(want, 0.0).cumsum()
        points = (rng.random() + np.arange(BLOCK)) * (cum[-1] / BLOCK)  # systematic sample
        counts = np.bincount(np.minimum(cum.searchsorted(points, side="right"), k - 1), minlength=k)
        block = np.repeat(np.arange(k), counts).tolist()
        rng.shuffle(block)
        return block, want - counts


@dataclass(frozen=True)
class UniformDraw:
    """Every bucket equally likely, each draw independent (lhotse's); ignores the weights."""

    kind: ClassVar[str] = "uniform"

    def block(
        self, rng: random.Random, quota: np.ndarray, credits: np.ndarray
    ) -> tuple[list[int], np.ndarray]:
        k = len(quota)
        return [min(int(rng.random() * k), k - 1) for _ in range(BLOCK)], credits


#: How the bucket of each step is drawn.
BucketDraw = InflowDraw | UniformDraw
#: The draws by their ``kind`` (the name a config file gives).
BUCKET_DRAWS: dict[str, type[BucketDraw]] = {c.kind: c for c in (InflowDraw, UniformDraw)}


class BucketChooser:
    """Draws a bucket per step and resolves it to a ready bucket (nearest fallback)."""

    def __init__(self, weights: np.ndarray, draw: BucketDraw, seed: Any) -> None:
        """``weights``: each bucket's expected batch inflow, the rates `InflowDraw` follows."""
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1 or len(w) == 0 or np.any(w < 0) or not np.isfinite(w).all():
            raise ValueError("bucket weights must be a non-empty vector of finite values >= 0")
        if w.sum() <= 0:
            w = np.ones_like(w)
        self.num_buckets = len(w)
        self.strategy = draw
        self.quota = w / w.sum()  # (K,) share of draws per bucket
        self.credits = np.zeros(len(w))  # (K,) draws owed (expected minus actual) before the block
        self.rng = seeded_random(seed)
        self._index = np.arange(len(w))
        self._block: list[int] = []  # this block's draws
        self._bits = 0  # this block's tie-break bits
        self._pos = 0

    def draw(self) -> tuple[int, bool]:
        """(drawn bucket, prefer the higher neighbour on a tie)."""
        if self._pos == len(self._block):
            self._next_block()
        pos = self._pos
        self._pos = pos + 1
        return self._block[pos], bool((self._bits >> pos) & 1)

    def peek(self) -> int:
        """The bucket the next `draw` will name (without drawing it)."""
        if self._pos == len(self._block):
            self._next_block()
        return self._block[self._pos]

    def _next_block(self) -> None:
        self._block, self.credits = self.strategy.block(self.rng, self.quota, self.credits)
        self._bits = self.rng.getrandbits(BLOCK)
        self._pos = 0

    def fallback(self, drawn: int, prefer_up: bool, *allowed: np.ndarray) -> int:
        """The bucket nearest ``drawn`` in the first non-empty mask of ``allowed``; -1 if none."""
        for mask in allowed:
            candidates = self._index[mask]
            if len(candidates):
                return nearest(candidates, drawn, prefer_up)
        return -1

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": random_state(self.rng),
            "credits": self.credits.tolist(),
            "block": list(self._block),
            "bits": self._bits,
            "pos": self._pos,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_random_state(self.rng, state["rng"])
        self.credits = np.asarray(state["credits"], dtype=np.float64)
        self._block = list(state["block"])
        self._bits = int(state["bits"])
        self._pos = int(state["pos"])


def seeded_random(seed: Any) -> random.Random:
    """A Python RNG (scalar draws in ~50 ns, a numpy Generator takes microseconds) seeded from
    a numpy SeedSequence entropy list such as ``[seed, epoch, rank, salt]``."""
    return random.Random(int(np.random.SeedSequence(seed).generate_state(2, np.uint64)[0]))


def random_state(rng: random.Random) -> list[Any]:
    """JSON-friendly ``rng.getstate()``."""
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def set_random_state(rng: random.Random, state: list[Any]) -> None:
    version, internal, gauss = state
    rng.setstate((version, tuple(internal), gauss))


def nearest(candidates: np.ndarray, target: int, prefer_up: bool) -> int:
    """The candidate closest to ``target``; on a tie the one above if ``prefer_up``."""
    pos = int(np.searchsorted(candidates, target))
    below = int(candidates[pos - 1]) if pos > 0 else None
    above = int(candidates[pos]) if pos < len(candidates) else None
    if below is None:
        assert above is not None
        return above
    if above is None:
        return below
    d_below, d_above = target - below, above - target
    if d_below == d_above:
        return above if prefer_up else below
    return below if d_below < d_above else above
