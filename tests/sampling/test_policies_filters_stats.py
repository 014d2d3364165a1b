"""Batch-size policies, filters and padding statistics."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from padless.sampling.config import PlanConfig
from padless.sampling.estimate import estimate_plan
from padless.sampling.filters import FilterConfig
from padless.sampling.plan import PlanError
from padless.sampling.policies import BucketBatchSizes, DurationBudget, FixedBatchSize
from padless.sampling.stats import PaddingTotals, batch_padding


@settings(max_examples=80, deadline=None)
@given(
    durations=st.lists(st.floats(0.1, 40.0), min_size=1, max_size=80),
    budget=st.floats(40.0, 400.0),
    quadratic=st.one_of(st.none(), st.floats(10.0, 60.0)),
)
def test_duration_budget_takes_the_longest_prefix_within_the_padded_budget(
    durations, budget, quadratic
) -> None:
    policy = DurationBudget(budget, quadratic)
    d = np.array(durations)
    costs = policy.costs(d, np.zeros(len(d), dtype=np.int64))
    d, costs = d[policy.fits(costs)], costs[policy.fits(costs)]  # the sampler drops the rest
    assume(len(d) > 0)
    k = policy.take(0, costs)
    eff = policy.effective(d)
    assert 1 <= k <= len(d)
    assert k * eff[:k].max() <= budget  # the limit holds exactly, in real seconds
    if k < len(d):  # and the batch is full: one more example would break it
        assert (k + 1) * eff[: k + 1].max() > budget - 1e-5


def test_duration_budget_readiness_means_a_full_batch() -> None:
    policy = DurationBudget(100.0)
    costs = policy.costs(np.array([30.0, 30.0, 30.0, 30.0]), np.zeros(4, dtype=np.int64))
    sums = np.array([costs[:3].sum(), costs.sum()])
    assert policy.ready(np.array([3, 4]), sums).tolist() == [False, True]
    assert policy.take(0, costs) == 3


def test_expected_batch_size_matches_simulated_batches(mix_5k) -> None:
    dur, tok = mix_5k
    plan = estimate_plan(
        dur, tok, PlanConfig(12, 1, "equal-duration"), FilterConfig(max_duration=40.0)
    )
    policy = DurationBudget(360.0)
    expected = policy.expected_batch_size(plan)
    idx = np.minimum(np.searchsorted(plan.duration_edges, dur, side="left"), 11)
    rng = np.random.default_rng(0)
    for b in range(12):
        members = dur[idx == b]
        sizes = [
            policy.take(b, policy.costs(rng.permutation(members), tok[:1])) for _ in range(200)
        ]
        assert expected[b] == pytest.approx(np.mean(sizes), rel=0.08)


def test_fixed_and_table_policies() -> None:
    fixed = FixedBatchSize(4)
    ones = fixed.costs(np.ones(9), np.ones(9, dtype=np.int64))
    assert fixed.take(0, ones) == 4 and fixed.take(0, ones[:2]) == 2
    assert fixed.ready(np.array([3, 4]), np.array([3, 4])).tolist() == [False, True]
    table = BucketBatchSizes((2, 5))
    assert table.take(1, ones) == 5 and table.take(0, ones) == 2
    assert table.ready(np.array([2, 4]), np.array([2, 4])).tolist() == [True, False]
    with pytest.raises(ValueError):
        FixedBatchSize(0)


def _table_for(plan, sizes):
    return {
        "format": "padless.batch_sizes",
        "version": 1,
        "buckets": [
            {
                "index": b.index,
                "max_duration": b.max_duration,
                "max_tokens": b.max_tokens,
                "batch_size": n,
                "peak_gib": 1.0,
            }
            for b, n in zip(plan.buckets, sizes, strict=True)
        ],
    }


def test_table_is_validated_against_the_plan(mix_5k, tmp_path) -> None:
    dur, tok = mix_5k
    plan = estimate_plan(dur, tok, PlanConfig(4, 2, "equal-duration"), FilterConfig())
    good = _table_for(plan, [8, 7, 6, 5, 4, 3, 2, 1])
    path = tmp_path / "table.json"
    path.write_text(json.dumps(good))
    assert BucketBatchSizes.load(path, plan).batch_sizes == (8, 7, 6, 5, 4, 3, 2, 1)
    bad_edge = json.loads(json.dumps(good))
    bad_edge["buckets"][2]["max_duration"] += 0.5
    bad_count = json.loads(json.dumps(good))
    bad_count["buckets"].pop()
    bad_tokens = json.loads(json.dumps(good))
    bad_tokens["buckets"][5]["max_tokens"] = 10**6
    fractional = json.loads(json.dumps(good))
    fractional["buckets"][3]["batch_size"] = 2.7  # was silently int(2.7) == 2
    missing = json.loads(json.dumps(good))
    del missing["buckets"][1]["batch_size"]  # was a KeyError traceback
    for table, message in [
        (bad_edge, "bucket 2 max_duration"),
        (bad_count, "table has 7 buckets, the plan has 8"),
        (bad_tokens, "bucket 5 max_tokens"),
        ({**good, "format": "x"}, "not a batch-size table"),
        (fractional, r"bucket 3 batch_size 2\.7 is not a positive integer"),
        (missing, "row 1 has no 'batch_size'"),
        ({**good, "buckets": [1, 2]}, "'buckets' must be a list of objects"),
    ]:
        path.write_text(json.dumps(table))
        with pytest.raises(PlanError, match=message):
            BucketBatchSizes.load(path, plan)


def test_filters_count_each_example_once_under_its_first_reason() -> None:
    f = FilterConfig(min_duration=1.0, max_duration=20.0, max_tokens=100, tps_max=25.0)
    dur = np.array([0.5, 0.5, 30.0, 10.0, 2.0, 10.0, 1.0, 20.0])
    tok = np.array([100, 5, 50, 200, 60, 50, 25, 100])
    counts: Counter[str] = Counter()
    keep = f.apply(dur, tok, counts)
    # 0.5 s with 100 tokens is too short (first reason) though also above 25 tokens/s.
    assert keep.tolist() == [False, False, False, False, False, True, True, True]
    assert counts == {"too_short": 2, "too_long": 1, "too_many_tokens": 1, "tps": 1}
    with pytest.raises(ValueError, match="min_duration"):
        FilterConfig(min_duration=5.0, max_duration=1.0)


def test_padding_ratios() -> None:
    audio, token = batch_padding(np.array([10.0, 5.0]), np.array([40, 40]))
    assert audio == pytest.approx(0.25) and token == 0.0
    totals = PaddingTotals()
    totals.add(np.array([10.0, 5.0]), np.array([40, 40]))
    totals.add(np.array([2.0]), np.array([10]))
    # Ratios of sums: 3 s padding of 22 s padded; 0 of 90 tokens.
    assert totals.audio_padding == pytest.approx(5.0 / 22.0)
    assert totals.token_padding == 0.0 and totals.mean_batch_size == 1.5
