"""Plans (estimation, JSON round trip, validation) and bucket assignment (strict, flexible)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from padless.sampling.assign import BucketAssigner
from padless.sampling.config import PlanConfig
from padless.sampling.estimate import estimate_plan
from padless.sampling.filters import FilterConfig
from padless.sampling.plan import Bucket, BucketPlan, PlanError

FILTERS = FilterConfig(min_duration=0.5, max_duration=40.0)


@pytest.fixture(scope="module")
def plan_2d(mix_5k) -> BucketPlan:
    dur, tok = mix_5k
    return estimate_plan(dur, tok, PlanConfig(10, 3, "equal-duration"), FILTERS)


def test_2d_plan_bounds_partition_the_sample(plan_2d: BucketPlan, mix_5k) -> None:
    dur, tok = mix_5k
    assert len(plan_2d) == 30 and plan_2d.is_2d
    assert plan_2d.buckets[0].min_duration == 0.5 and plan_2d.buckets[-1].max_duration == 40.0
    for b in plan_2d.buckets:
        sub = b.index % 3
        assert (b.min_tokens is None) == (sub == 0)
        if sub:
            assert b.min_tokens == plan_2d.buckets[b.index - 1].max_tokens
    # Every sample example lies in exactly one bucket's bounds, which is where strict puts it.
    idx = BucketAssigner(plan_2d, "strict").assign(dur, tok)
    assert (idx >= 0).all()
    assert sum(b.sample_count for b in plan_2d.buckets) == len(dur)
    assert np.array_equal(np.bincount(idx, minlength=30), [b.sample_count for b in plan_2d.buckets])
    for i in np.random.default_rng(0).choice(len(dur), 300):
        b = plan_2d.buckets[idx[i]]
        assert (b.min_duration < dur[i] or b.index < 3) and dur[i] <= b.max_duration
        assert (b.min_tokens is None or b.min_tokens < tok[i]) and tok[i] <= b.max_tokens


def test_equal_duration_2d_sub_bins_hold_equal_tokens(plan_2d: BucketPlan) -> None:
    for i in range(plan_2d.num_duration_bins):
        subs = plan_2d.buckets[i * 3 : i * 3 + 3]
        mass = np.array([b.sample_tokens for b in subs], dtype=float)
        assert mass.min() > 0.5 * mass.mean()


def test_plan_json_round_trip_and_schema(plan_2d: BucketPlan, tmp_path) -> None:
    path = plan_2d.save(tmp_path / "plan.json")
    data = json.loads(path.read_text())
    assert data["format"] == "padless.bucket_plan" and data["version"] == 1
    assert data["token_bounds"] == "enforced"
    assert set(data["buckets"][0]) >= {
        "index",
        "min_duration",
        "max_duration",
        "min_tokens",
        "max_tokens",
    }
    assert data["buckets"][0]["min_tokens"] is None
    loaded = BucketPlan.load(path)
    assert loaded == plan_2d
    assert loaded.fingerprint() == plan_2d.fingerprint()


def test_1d_plan_has_informational_token_bounds(mix_5k) -> None:
    dur, tok = mix_5k
    plan = estimate_plan(dur, tok, PlanConfig(8, 1, "optimal"), FILTERS)
    assert not plan.is_2d and plan.to_json()["token_bounds"] == "informational"
    idx = BucketAssigner(plan, "strict").assign(dur, tok)
    for b in plan.buckets:
        assert b.min_tokens is None and b.max_tokens == tok[idx == b.index].max()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format="other"), "not a bucket plan"),
        (lambda d: d.update(version=2), "plan version 2"),
        (lambda d: d["buckets"].pop(), "plan has 29 buckets"),
        (lambda d: d["buckets"][3].update(index=7), "bucket 3 has index 7"),
        (lambda d: d["buckets"][0].pop("max_duration"), "malformed plan"),
    ],
)
def test_bad_plans_are_rejected_with_the_file_named(
    plan_2d: BucketPlan, tmp_path, edit, message
) -> None:
    data = plan_2d.to_json()
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(PlanError, match=message) as err:
        BucketPlan.load(path)
    assert str(path) in str(err.value)


def _toy_plan() -> BucketPlan:
    # Two duration bins x two token sub-bins; the second bin's first sub-bin is low.
    bounds = [(0.0, 5.0, None, 20), (0.0, 5.0, 20, 40), (5.0, 10.0, None, 30), (5.0, 10.0, 30, 90)]
    buckets = tuple(Bucket(i, a, b, c, d) for i, (a, b, c, d) in enumerate(bounds))
    return BucketPlan(buckets, num_duration_bins=2, num_subbuckets=2)


def _reference(plan: BucketPlan, mode: str, d: float, t: int) -> int:
    """Assignment by the paper's words, one bucket at a time."""
    s = plan.num_subbuckets
    bins = [plan.buckets[i * s].max_duration for i in range(plan.num_duration_bins)]
    first_bin = next((i for i, e in enumerate(bins) if d <= e), None)
    if first_bin is None:
        return -1
    if mode == "strict":
        for b in plan.buckets[first_bin * s : first_bin * s + s]:
            if t <= b.max_tokens:
                return b.index
        return -1
    for b in plan.buckets[first_bin * s :]:  # smallest bucket (in plan order) that fits both
        if d <= b.max_duration and t <= b.max_tokens:
            return b.index
    return -1


def test_strict_drops_and_flexible_moves_long_transcripts() -> None:
    plan = _toy_plan()
    dur = np.array([1.0, 1.0, 1.0, 6.0, 6.0, 11.0])
    tok = np.array([10, 35, 80, 25, 95, 5])
    counts: Counter[str] = Counter()
    assert BucketAssigner(plan, "strict").assign(dur, tok, counts).tolist() == [0, 1, -1, 2, -1, -1]
    assert counts == {"strict_tokens": 2, "outside_plan": 1}
    counts.clear()
    assert BucketAssigner(plan, "flexible").assign(dur, tok, counts).tolist() == [
        0,
        1,
        3,
        2,
        -1,
        -1,
    ]
    assert counts == {"outside_plan": 2}


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.tuples(st.floats(0.01, 12.0), st.integers(0, 120)), min_size=1, max_size=60),
    mode=st.sampled_from(["strict", "flexible"]),
)
def test_vectorised_assignment_matches_the_reference(data, mode) -> None:
    plan = _toy_plan()
    dur = np.array([d for d, _ in data])
    tok = np.array([t for _, t in data], dtype=np.int64)
    got = BucketAssigner(plan, mode).assign(dur, tok).tolist()
    assert got == [_reference(plan, mode, d, t) for d, t in data]


def test_flexible_keeps_what_strict_drops_on_a_real_plan(mix_5k) -> None:
    dur, tok = mix_5k
    plan = estimate_plan(dur[:1000], tok[:1000], PlanConfig(10, 2, "optimal"), FILTERS)
    strict, flexible = Counter[str](), Counter[str]()
    s = BucketAssigner(plan, "strict").assign(dur, tok, strict)
    f = BucketAssigner(plan, "flexible").assign(dur, tok, flexible)
    assert strict["strict_tokens"] > 0
    assert np.count_nonzero(f >= 0) > np.count_nonzero(s >= 0)
    both = (s >= 0) & (f >= 0)
    assert np.array_equal(s[both], f[both])  # in-bounds examples land in the same bucket


def test_degenerate_plans_merge_empty_bins_and_warn(caplog: pytest.LogCaptureFixture) -> None:
    # Five distinct durations cannot fill ten duration bins: the empty, zero-width ones are
    # merged away instead of becoming buckets that never get a batch.
    dur = np.repeat([1.0, 2.0, 3.0, 4.0, 5.0], 20)
    tok = np.repeat([5, 9, 14, 18, 25], 20)
    with caplog.at_level("WARNING", logger="padless.sampling"):
        plan = estimate_plan(dur, tok, PlanConfig(10, 1, "equal-duration"), FilterConfig())
    assert all(b.sample_count > 0 for b in plan.buckets)
    assert plan.num_duration_bins == len(plan) <= 5
    assert sum(b.sample_count for b in plan.buckets) == 100
    assert BucketAssigner(plan).assign(dur, tok).min() >= 0  # every example still has a bucket
    assert "duration bins hold no example" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="padless.sampling"):
        estimate_plan(dur[:1], tok[:1], PlanConfig(1, 1), FilterConfig())
    assert "single example" in caplog.text
    caplog.clear()
    # 2D: one token count per duration bin leaves sub-buckets empty; they are named.
    with caplog.at_level("WARNING", logger="padless.sampling"):
        plan_2d = estimate_plan(dur, tok, PlanConfig(5, 2, "equal-duration"), FilterConfig())
    empty = [b.index for b in plan_2d.buckets if b.sample_count == 0]
    assert empty and f"bucket(s) {', '.join(map(str, empty))} hold no example" in caplog.text


def test_filters_that_drop_most_examples_warn_and_dropping_all_is_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from padless.data.errors import NoExamplesError
    from padless.data.example import Example
    from padless.sampling.estimate import plan_from_examples

    examples = [Example(f"e{i}", 1.0 + i, None, "x", num_tokens=10) for i in range(10)]
    with caplog.at_level("WARNING", logger="padless.sampling"):
        plan_from_examples(examples, PlanConfig(2, 1), FilterConfig(max_duration=4.5))
    assert "6 of 10 examples (60%) were filtered: 6 too_long" in caplog.text
    with pytest.raises(NoExamplesError, match=r"all 10 examples were filtered \(10 too_long"):
        plan_from_examples(examples, PlanConfig(2, 1), FilterConfig(max_duration=0.5))
    with pytest.raises(NoExamplesError, match=r"no examples in a\.jsonl"):
        plan_from_examples([], PlanConfig(2, 1), sample_info={"manifests": ["a.jsonl"]})
