"""Bin estimators: reservoir sampling, equal cumulative duration, the padding-optimal DP."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from padless.sampling.bins import (
    Reservoir,
    equal_mass_edges,
    estimate_edges,
    optimal_edges,
    padding_to_edges,
)


def test_reservoir_is_a_uniform_sample_of_the_whole_stream() -> None:
    # A stream whose values grow along it: a head-of-stream sample (lhotse's) would be biased.
    values = np.arange(200_000, dtype=np.float64)
    res = Reservoir(5000, seed=3)
    for start in range(0, len(values), 1000):
        chunk = values[start : start + 1000]
        res.add(chunk, chunk.astype(np.int64))
    dur, tok = res.sample()
    assert len(dur) == 5000 and res.seen == len(values)
    assert len(np.unique(dur)) == 5000  # without replacement
    assert np.array_equal(dur.astype(np.int64), tok)  # pairs stay together
    # Mean and spread of a uniform sample of 0..N-1: N/2 +- N/sqrt(12 n).
    assert abs(dur.mean() - values.mean()) < 4 * values.std() / np.sqrt(5000)
    assert dur.min() < 0.01 * len(values) and dur.max() > 0.99 * len(values)


def test_reservoir_is_deterministic_and_small_streams_are_kept_whole() -> None:
    def run(seed: int) -> np.ndarray:
        res = Reservoir(100, seed=seed)
        for i in range(30):
            res.add(np.arange(i * 10, i * 10 + 10, dtype=float), np.zeros(10, dtype=np.int64))
        return res.sample()[0]

    assert np.array_equal(run(1), run(1))
    assert not np.array_equal(np.sort(run(1)), np.sort(run(2)))
    small = Reservoir(100, seed=0)
    small.add(np.array([3.0, 1.0, 2.0]), np.array([3, 1, 2]))
    assert sorted(small.sample()[0].tolist()) == [1.0, 2.0, 3.0]


def test_equal_duration_bins_hold_equal_cumulative_duration(mix_5k) -> None:
    dur, _ = mix_5k
    edges = equal_mass_edges(dur, 10, top=40.0)
    assert edges[-1] == 40.0 and np.all(np.diff(edges) > 0)
    idx = np.searchsorted(edges, dur, side="left")
    mass = np.bincount(idx, weights=dur, minlength=10)
    # Each bin is within one (largest) example of an equal share.
    assert np.all(np.abs(mass - dur.sum() / 10) <= dur.max() + 1e-9)


def _brute_force_padding(x: np.ndarray, k: int) -> float:
    """Least padding over every choice of k-1 inner edges among the distinct values."""
    values = np.unique(x)
    best = np.inf
    for inner in itertools.combinations(values[:-1], k - 1):
        edges = np.array([*inner, values[-1]])
        idx = np.searchsorted(edges, x, side="left")
        best = min(best, float((edges[idx] - x).sum()))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_optimal_edges_match_brute_force_on_small_samples(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = np.round(rng.lognormal(1.5, 0.6, 40), 2)
    edges = optimal_edges(x, 4, min_share=0.0, grid_size=10_000)
    idx = np.searchsorted(edges, x, side="left")
    assert float((edges[idx] - x).sum()) == pytest.approx(_brute_force_padding(x, 4))


def test_optimal_beats_equal_duration_and_respects_the_share_floor(mix_5k) -> None:
    dur, _ = mix_5k
    equal = equal_mass_edges(dur, 30, top=40.0)
    best = optimal_edges(dur, 30, top=40.0, min_share=0.25)
    assert padding_to_edges(dur, best) < 0.85 * padding_to_edges(dur, equal)
    idx = np.searchsorted(best, dur, side="left")
    mass = np.bincount(idx, weights=dur, minlength=30)
    assert mass.min() >= 0.25 * dur.sum() / 30 - 1e-6
    assert best[-1] == 40.0 and np.all(np.diff(best) > 0)


def test_optimal_edges_report_an_impossible_floor() -> None:
    with pytest.raises(ValueError, match="min_share"):
        optimal_edges(np.array([1.0, 1.0, 1.0, 9.0]), 3, min_share=1.0)


def test_estimate_edges_dispatch_and_single_bin() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert estimate_edges(x, 1, "optimal", top=10.0).tolist() == [10.0]
    with pytest.raises(ValueError, match="unknown bin estimator"):
        estimate_edges(x, 2, "quantile")  # type: ignore[arg-type]


def test_optimal_beats_equal_duration_on_real_durations(real_data_dir) -> None:
    dur = []
    for path in sorted(real_data_dir.glob("*.jsonl")):
        with path.open() as f:
            dur.extend(json.loads(line)["duration"] for line in f)
    x = np.array(dur)
    x = x[(x >= 0.5) & (x <= 40.0)]
    rng = np.random.default_rng(0)
    x = rng.choice(x, 50_000, replace=False)
    equal = padding_to_edges(x, equal_mass_edges(x, 60, top=40.0))
    best = padding_to_edges(x, optimal_edges(x, 60, top=40.0))
    assert best < 0.8 * equal
