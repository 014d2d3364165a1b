"""The batch-size search against probes whose answer is known exactly.

Each probe here computes the peak memory of a "training step" from a formula, so the largest
fitting batch size of every bucket is known in closed form and the search's answer can be
checked exactly (to within its tolerance), together with how many trials it needed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from padless.batchsize.search import (
    BucketShape,
    Measurement,
    NoBatchFitsError,
    SearchConfig,
    search,
)

GIB = 2**30


@dataclass
class FormulaProbe:
    """peak(n) = static + n * per_example(shape) (+ optional curvature and 2 MiB rounding)."""

    budget_bytes: int
    static: float = 6 * GIB
    per_second: float = 40e6  # activation bytes per example per second of audio
    per_token: float = 3e6  # activation bytes per example per decoder token
    quadratic: float = 0.0  # extra n**2 term: breaks the affine assumption on purpose
    round_to: int = 1  # allocator-like rounding of the peak
    hide_failed_peaks: bool = False  # like a GPU: an out-of-memory trial reports no peak
    name: str = "formula"
    calls: list[tuple[BucketShape, int]] = field(default_factory=list)

    def per_example(self, shape: BucketShape) -> float:
        return self.per_second * shape.max_duration + self.per_token * shape.max_tokens

    def peak(self, shape: BucketShape, n: int) -> int:
        raw = self.static + n * self.per_example(shape) + self.quadratic * n * n
        return math.ceil(raw / self.round_to) * self.round_to

    def largest_fitting(self, shape: BucketShape) -> int:
        n = 0
        while self.peak(shape, n + 1) <= self.budget_bytes:
            n += 1
        return n

    def prepare(self, shapes: list[BucketShape]) -> None:
        assert sorted(shapes, reverse=True) == list(shapes)  # longest first

    def measure(self, shape: BucketShape, batch_size: int) -> Measurement:
        self.calls.append((shape, batch_size))
        peak = self.peak(shape, batch_size)
        fits = peak <= self.budget_bytes
        shown = None if (self.hide_failed_peaks and not fits) else peak
        return Measurement(batch_size, fits, shown, 0.0)


def plan_30x2() -> list[BucketShape]:
    """A 2D plan like the paper's: 30 duration bins, 2 token sub-bins each."""
    shapes = []
    for d in range(30):
        duration = 1.0 + 39.0 * (d + 1) / 30
        low, high = int(duration * 4) + 6, int(duration * 9) + 6
        shapes.append(BucketShape(duration, low, index=2 * d))
        shapes.append(BucketShape(duration, high, index=2 * d + 1))
    return shapes


def check_exact(probe: FormulaProbe, shapes: list[BucketShape], config: SearchConfig) -> int:
    result = search(shapes, probe, config)
    for shape, bucket in zip(shapes, result.buckets, strict=True):
        truth = min(probe.largest_fitting(shape), config.max_batch_size)
        assert bucket.shape == shape
        assert bucket.max_fitting <= truth, (shape, bucket)
        if bucket.upper is not None:
            assert (
                truth
                < bucket.upper
                <= max(bucket.max_fitting + 1, bucket.max_fitting * (1 + config.tolerance))
            )
        else:
            assert bucket.max_fitting == config.max_batch_size
        assert bucket.batch_size == max(1, math.floor(bucket.max_fitting * (1 - config.margin)))
    assert result.num_trials == len(probe.calls)
    return result.num_trials


def test_affine_probe_exact_answers_in_few_trials(caplog: pytest.LogCaptureFixture) -> None:
    shapes = plan_30x2()
    probe = FormulaProbe(budget_bytes=80 * GIB)
    config = SearchConfig(verify_chosen=False)
    with caplog.at_level(logging.INFO, logger="padless.batchsize.search"):
        trials = check_exact(probe, shapes, config)
    result_answers = {s: probe.largest_fitting(s) for s in shapes}
    # An exactly affine probe is solved exactly, not just within tolerance.
    result = search(shapes, FormulaProbe(budget_bytes=80 * GIB), config)
    assert all(b.max_fitting == result_answers[b.shape] for b in result.buckets)
    # Every trial is logged with its bucket, batch size and outcome.
    logged = [r for r in caplog.records if " fit" in r.getMessage() and "peak" in r.getMessage()]
    assert len(logged) == trials
    # The affine prediction plus monotonicity: two to three trials per bucket, not ~12.
    assert trials <= 2.5 * len(shapes), trials


def test_affine_search_beats_plain_bisection() -> None:
    shapes = plan_30x2()
    fast = check_exact(FormulaProbe(budget_bytes=80 * GIB), shapes, SearchConfig())
    plain = check_exact(
        FormulaProbe(budget_bytes=80 * GIB),
        shapes,
        SearchConfig(affine=False, monotone=False, verify_chosen=False),
    )
    assert fast * 2 < plain, (fast, plain)


def test_non_affine_probe_still_within_tolerance() -> None:
    probe = FormulaProbe(budget_bytes=40 * GIB, quadratic=2e5, round_to=20 * 2**20)
    check_exact(probe, plan_30x2(), SearchConfig(tolerance=0.02))


def test_gpu_like_probe_without_peaks_on_failure() -> None:
    probe = FormulaProbe(budget_bytes=24 * GIB, hide_failed_peaks=True)
    check_exact(probe, plan_30x2()[::3], SearchConfig())


def test_results_are_monotone_along_durations() -> None:
    shapes = [BucketShape(d, int(6 + 8 * d), index=i) for i, d in enumerate((2, 5, 10, 20, 40))]
    probe = FormulaProbe(budget_bytes=80 * GIB)
    result = search(shapes, probe)
    sizes = [b.max_fitting for b in result.buckets]
    assert sizes == sorted(sizes, reverse=True)
    for b in result.buckets:
        # verify_chosen: the chosen size was run, so its peak is measured, and it fits.
        assert b.peak_measured and b.peak_bytes == probe.peak(b.shape, b.batch_size)
        assert b.peak_bytes <= 80 * GIB
        assert b.trials[-1].batch_size == b.batch_size and b.trials[-1].fits


def test_cap_is_reported() -> None:
    config = SearchConfig(max_batch_size=64)
    result = search([BucketShape(0.5, 8)], FormulaProbe(budget_bytes=80 * GIB), config)
    (bucket,) = result.buckets
    assert bucket.capped and bucket.max_fitting == 64 and bucket.batch_size == 57


def test_single_example_too_large_is_a_clear_error() -> None:
    probe = FormulaProbe(budget_bytes=7 * GIB, per_second=1e9)
    with pytest.raises(NoBatchFitsError, match=r"bucket 3 \(40 s, 400 tokens\).*single example"):
        search([BucketShape(40.0, 400, index=3)], probe)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        SearchConfig(tolerance=0)
    with pytest.raises(ValueError, match="margin"):
        SearchConfig(margin=1.0)


@settings(max_examples=40, deadline=None)
@given(
    budget_gib=st.floats(8, 200),
    per_second=st.floats(1e6, 5e8),
    per_token=st.floats(0, 1e7),
    tolerance=st.sampled_from([0.01, 0.05, 0.2]),
    quadratic=st.sampled_from([0.0, 1e6]),
    hide=st.booleans(),
)
def test_search_property(
    budget_gib: float,
    per_second: float,
    per_token: float,
    tolerance: float,
    quadratic: float,
    hide: bool,
) -> None:
    probe = FormulaProbe(
        budget_bytes=int(budget_gib * GIB),
        static=2 * GIB,
        per_second=per_second,
        per_token=per_token,
        quadratic=quadratic,
        hide_failed_peaks=hide,
    )
    shapes = [s for s in plan_30x2()[::5] if probe.peak(s, 1) <= probe.budget_bytes]
    check_exact(probe, shapes, SearchConfig(tolerance=tolerance, max_batch_size=4096))
