"""The lhotse peer: lhotse's DynamicBucketingSampler run on padless Examples."""

from __future__ import annotations

import math
import sys
from bisect import bisect_left
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from padless.data.example import Example, FileAudio
from padless.peers.lhotse_buckets import Grid2D
from padless.peers.lhotse_config import LhotseMissingError, LhotsePeerConfig, bins_from_plan
from padless.peers.lhotse_run import measure_lhotse_peer_rss, run_lhotse_peer

pytest.importorskip("lhotse")


def make_examples(n: int, seed: int = 0) -> list[Example]:
    """Speech-like lengths: 0.5-40 s, ~5 tokens/s plus a 6-token prompt, a few TPS outliers."""
    rng = np.random.default_rng(seed)
    dur = np.clip(np.round(rng.lognormal(np.log(10), 0.7, n), 3), 0.5, 40.0)
    tok = 6 + rng.poisson(dur * 5 * rng.lognormal(0, 0.25, n))
    outlier = rng.random(n) < 0.01
    tok = np.where(outlier, np.ceil(dur * 30), tok).astype(int)
    return [
        Example(
            id=f"ex-{i:05d}",
            duration=float(d),
            audio=FileAudio(f"/data/{i}.flac"),
            text="some words",
            source_lang="en",
            target_lang="en",
            num_tokens=int(t),
        )
        for i, (d, t) in enumerate(zip(dur, tok, strict=True))
    ]


def equal_duration_bins(examples: list[Example], k: int) -> tuple[float, ...]:
    d = np.sort([e.duration for e in examples])
    cum = np.cumsum(d)
    inner = d[np.searchsorted(cum, cum[-1] * np.arange(1, k) / k)]
    return tuple(float(x) for x in np.unique(np.append(inner, d[-1])))


def bins_2d(examples: list[Example], k: int) -> tuple[tuple[float, float], ...]:
    """Each 1D bin split at its median token count; top sub-bin edge = the bin's max tokens."""
    edges = equal_duration_bins(examples, k)
    groups: list[list[int]] = [[] for _ in edges]
    for e in examples:
        assert e.num_tokens is not None
        groups[bisect_left(edges, e.duration)].append(e.num_tokens)
    pairs = set()
    for edge, toks in zip(edges, groups, strict=True):
        pairs.add((edge, float(np.median(toks))))
        pairs.add((edge, float(max(toks))))
    return tuple(sorted(pairs))


def split(examples: list[Example], world: int) -> list[list[Example]]:
    return [examples[r::world] for r in range(world)]


@pytest.fixture(scope="module")
def examples() -> list[Example]:
    return make_examples(3000)


def by_id(examples: list[Example]) -> dict[str, Example]:
    return {e.id: e for e in examples}


@pytest.mark.parametrize("world", [1, 4])
def test_1d_budget_every_example_once_on_its_own_rank(examples, world) -> None:
    bins = equal_duration_bins(examples, 30)
    parts = split(examples, world)
    result = run_lhotse_peer(parts, LhotsePeerConfig(bins=bins, max_duration=360.0))
    assert len(result.ranks) == world
    seen: Counter[str] = Counter()
    index = by_id(examples)
    for part, rank in zip(parts, result.ranks, strict=True):
        own = {e.id for e in part}
        ids = [i for batch in rank.batches for i in batch]
        assert set(ids) == own  # disjoint ranks, nothing lost without filters
        seen.update(ids)
        assert rank.steps == len(rank.batches) == len(rank.buckets)
        assert rank.examples == len(ids)
        assert rank.num_lhotse_buckets == len(bins)  # no trailing empty bucket by default
        for batch, bucket in zip(rank.batches, rank.buckets, strict=True):
            durs = [index[i].duration for i in batch]
            # lhotse's TimeConstraint: B x longest of the first B-1 never exceeds the budget.
            if len(durs) >= 2:
                assert len(durs) * max(durs[:-1]) <= 360.0
            # One bucket per batch, the one reported (inner edges, last bucket open).
            assert {bisect_left(bins[:-1], d) for d in durs} == {bucket}
        assert rank.first_batch_s <= rank.sampler_s
        assert rank.examples_per_s > 0
    assert max(seen.values()) == 1
    assert result.examples == len(examples)


@pytest.mark.parametrize("world", [1, 4])
def test_2d_strict_filters_and_per_bucket_batch_sizes(examples, world) -> None:
    bins = bins_2d(examples[:1500], 10)  # estimated on half: the other half can miss buckets
    sizes = tuple(3 + i % 5 for i in range(len(bins)))
    config = LhotsePeerConfig(bins=bins, bucket_batch_sizes=sizes, tps_max=25.0)
    parts = split(examples, world)
    result = run_lhotse_peer(parts, config)
    for part, rank in zip(parts, result.ranks, strict=True):  # each rank samples its own data
        assert {i for b in rank.batches for i in b} <= {e.id for e in part}
    grid = Grid2D(bins, strict=True)
    index = by_id(examples)
    kept = {i for r in result.ranks for b in r.batches for i in b}
    filtered = result.filtered
    assert filtered["tps"] > 0 and filtered["strict_tokens"] > 0
    assert filtered["too_short"] == filtered["too_long"] == 0
    assert len(kept) + sum(filtered.values()) == len(examples)
    for ex in examples:
        tps_ok = ex.num_tokens / ex.duration <= 25.0
        fits = grid.assign(ex.duration, ex.num_tokens) is not None
        assert (ex.id in kept) == (tps_ok and fits)
    for rank in result.ranks:
        for batch, bucket in zip(rank.batches, rank.buckets, strict=True):
            assigned = {grid.assign(index[i].duration, index[i].num_tokens) for i in batch}
            assert assigned == {bucket}
            assert len(batch) <= sizes[bucket]  # per-bucket batch sizes are exact limits
        # Most batches are full: lhotse yields partial ones only when a bucket runs dry.
        full = sum(len(b) == sizes[k] for b, k in zip(rank.batches, rank.buckets, strict=True))
        assert full > 0.6 * rank.steps


def test_2d_flexible_keeps_token_outliers_strict_drops(examples) -> None:
    bins = bins_2d(examples[:1500], 10)
    strict = run_lhotse_peer([examples], LhotsePeerConfig(bins=bins, batch_size=16))
    flexible = run_lhotse_peer([examples], LhotsePeerConfig(bins=bins, batch_size=16, strict=False))
    assert strict.filtered["strict_tokens"] > 0 and flexible.filtered["strict_tokens"] == 0
    # Flexible still drops what is longer or wordier than the largest bucket.
    assert flexible.filtered["outside_plan"] < strict.filtered["strict_tokens"]
    for result in (strict, flexible):
        assert all(len(b) <= 16 for r in result.ranks for b in r.batches)
        assert result.examples + sum(result.filtered.values()) == len(examples)


def test_fixed_batch_size_round_robin_is_lhotse_native_ddp(examples) -> None:
    bins = equal_duration_bins(examples, 20)
    result = run_lhotse_peer(
        split(examples, 4), LhotsePeerConfig(bins=bins, batch_size=32, rank_mode="round_robin")
    )
    steps = {r.steps for r in result.ranks}
    assert len(steps) == 1  # lhotse's round robin gives every rank the same step count
    ids = Counter(i for r in result.ranks for b in r.batches for i in b)
    assert set(ids) == {e.id for e in examples} and max(ids.values()) == 1
    assert all(len(b) <= 32 for r in result.ranks for b in r.batches)


def test_sync_buckets_raises_rank_agreement(examples) -> None:
    bins = equal_duration_bins(examples, 10)

    def agreement(sync: bool) -> float:
        config = LhotsePeerConfig(bins=bins, max_duration=200.0, sync_buckets=sync)
        ranks = run_lhotse_peer(split(examples, 4), config).ranks
        steps = min(r.steps for r in ranks)
        return float(np.mean([len({r.buckets[s] for r in ranks}) == 1 for s in range(steps)]))

    synced, free = agreement(True), agreement(False)
    assert synced > 0.5 > free  # unsynchronised: four ranks rarely draw the same of 10 buckets


def test_lhotse_estimates_bins_from_the_first_examples() -> None:
    short = [e for e in make_examples(4000, seed=1) if e.duration < 8][:1000]
    long = [e for e in make_examples(4000, seed=2) if e.duration >= 8][:1000]
    config = LhotsePeerConfig(num_buckets=8, num_examples_for_bins=1000, max_duration=120.0)
    result = run_lhotse_peer([short + long], config)
    rank = result.ranks[0]
    # lhotse reads only the head of the stream: every bin lies among the short examples.
    assert len(rank.bins) == 7 and max(rank.bins) < 8
    assert rank.examples == 2000
    two_d = run_lhotse_peer(
        [short + long], LhotsePeerConfig(num_buckets=8, num_subbuckets=2, max_duration=120.0)
    )
    pairs = two_d.ranks[0].bins
    assert all(isinstance(p, tuple) for p in pairs) and len(pairs) > 8


def test_lazy_cuts_give_the_same_batches(examples) -> None:
    bins = equal_duration_bins(examples, 15)
    eager = run_lhotse_peer(split(examples, 2), LhotsePeerConfig(bins=bins, max_duration=300.0))
    lazy = run_lhotse_peer(
        split(examples, 2), LhotsePeerConfig(bins=bins, max_duration=300.0, materialize=False)
    )
    assert [r.batches for r in eager.ranks] == [r.batches for r in lazy.ranks]
    assert all(r.convert_s == 0 for r in lazy.ranks) and eager.convert_s > 0


def test_concurrent_mode_yields_every_example(examples) -> None:
    bins = equal_duration_bins(examples, 10)
    config = LhotsePeerConfig(bins=bins, max_duration=300.0, concurrent=True, buffer_size=2000)
    result = run_lhotse_peer([examples], config)
    ids = [i for b in result.ranks[0].batches for i in b]
    assert sorted(ids) == sorted(e.id for e in examples)


def test_bad_input_is_reported() -> None:
    no_tokens = [Example(id="x1", duration=2.0, audio=None)]
    with pytest.raises(ValueError, match="'x1': num_tokens is unknown"):
        run_lhotse_peer([no_tokens], LhotsePeerConfig(bins=((2.0, 10.0),), batch_size=2))
    with pytest.raises(ValueError, match="exactly one of"):
        LhotsePeerConfig(bins=(1.0, 2.0), batch_size=2, max_duration=10.0)
    with pytest.raises(ValueError, match="3 bucket batch sizes for 2 buckets"):
        LhotsePeerConfig(bins=(1.0, 2.0), bucket_batch_sizes=(1, 2, 3))
    with pytest.raises(ValueError, match="non-decreasing"):
        LhotsePeerConfig(bins=(2.0, 1.0), batch_size=2)
    with pytest.raises(ValueError, match="sorted"):
        LhotsePeerConfig(bins=((2.0, 5.0), (1.0, 9.0)), batch_size=2)
    with pytest.raises(ValueError, match="at least one rank"):
        run_lhotse_peer([], LhotsePeerConfig(batch_size=2))


def test_missing_lhotse_names_the_dev_extra(monkeypatch, examples) -> None:
    monkeypatch.setitem(sys.modules, "lhotse", None)
    with pytest.raises(LhotseMissingError, match=r"\.\[dev\]"):
        run_lhotse_peer([examples[:10]], LhotsePeerConfig(bins=(40.0,), batch_size=2))


def test_config_round_trips_through_json() -> None:
    config = LhotsePeerConfig(bins=((1.0, 8.0), (2.0, 12.0)), bucket_batch_sizes=(4, 2))
    assert LhotsePeerConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="unknown"):
        LhotsePeerConfig.from_json({**config.to_json(), "bogus": 1})


def reference_assign(bins, duration, tokens, strict):
    """NeMo's rule, spelled out: strict picks the smallest duration edge first."""
    if strict:
        candidates = [b[0] for b in bins if duration <= b[0]]
        if not candidates:
            return None
        edge = min(candidates)
        for i, (d, t) in enumerate(bins):
            if d == edge and tokens <= t:
                return i
        return None
    for i, (d, t) in enumerate(bins):
        if duration <= d and tokens <= t:
            return i
    return None


pair = st.tuples(st.integers(1, 8).map(float), st.integers(1, 30).map(float))


@settings(max_examples=300, deadline=None)
@given(
    bins=st.lists(pair, min_size=1, max_size=12, unique=True).map(lambda b: tuple(sorted(b))),
    duration=st.floats(0.1, 9.0),
    tokens=st.integers(0, 32),
    strict=st.booleans(),
)
def test_grid_assignment_matches_nemo_rule(bins, duration, tokens, strict) -> None:
    got = Grid2D(bins, strict).assign(duration, tokens)
    assert got == reference_assign(bins, duration, tokens, strict)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_peak_rss_in_a_subprocess(examples) -> None:
    bins = equal_duration_bins(examples, 10)
    # The child's figure is its own: a large parent must not leak into it through fork.
    ballast = np.ones(300 * 2**20, dtype=np.uint8)
    parent_rss = _rss_mb()
    report = measure_lhotse_peer_rss(
        split(examples, 2), LhotsePeerConfig(bins=bins, max_duration=300.0), timeout_s=300
    )
    del ballast
    assert report.baseline_rss_mb > 50  # python + torch + lhotse
    assert report.baseline_rss_mb <= report.peak_rss_mb < parent_rss - 200
    assert report.summary["examples"] == len(examples)
    assert len(report.summary["steps"]) == 2
    assert math.isfinite(report.summary["examples_per_s"])


@pytest.mark.parametrize("bins", ["equal-duration", "optimal"])
@pytest.mark.parametrize("subbuckets", [1, 2])
def test_bins_from_plan_give_padless_bucket_indices(examples, bins, subbuckets) -> None:
    from padless.sampling.assign import BucketAssigner
    from padless.sampling.config import PlanConfig
    from padless.sampling.estimate import estimate_plan
    from padless.sampling.filters import FilterConfig

    dur = np.array([e.duration for e in examples])
    tok = np.array([e.num_tokens for e in examples])
    config = PlanConfig(num_buckets=12, num_subbuckets=subbuckets, bins=bins)
    plan = estimate_plan(dur[:1500], tok[:1500], config, FilterConfig(max_duration=30.0))
    edges = bins_from_plan(plan)
    assert len(edges) == len(plan.buckets)
    for mode in ("strict", "flexible"):
        ours = BucketAssigner(plan, mode).assign(dur, tok)
        if subbuckets == 1:
            inner = edges[:-1]
            peer = [bisect_left(inner, d) if d <= edges[-1] else -1 for d in dur]
        else:
            grid = Grid2D(edges, strict=mode == "strict")
            peer = [
                -1 if (b := grid.assign(d, t)) is None else b
                for d, t in zip(dur.tolist(), tok.tolist(), strict=True)
            ]
        np.testing.assert_array_equal(ours, peer)
