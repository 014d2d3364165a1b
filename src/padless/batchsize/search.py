"""The batch-size search: for each bucket, the largest batch whose training step fits in memory.

The search is model-agnostic. It talks to a `MemoryProbe`, which answers one question: does a
training step with ``batch_size`` examples of a bucket's maximum shape fit the memory budget,
and what was its peak? Probes that simulate (fake tensors) or measure (a CPU subprocess) report
the peak even when it is over budget; a real GPU only says "out of memory".

Two facts cut the number of trials (each one a full training step):

* At a fixed shape, the peak memory of a step is affine in the batch size, ``a + b * n`` (the
  model, gradients and optimizer state are fixed; activations grow with ``n``). Two measured
  peaks predict the largest fitting ``n``; the search then confirms the prediction by testing
  it and the next size up, so a good prediction finishes a bucket in two or three trials. The
  intercept ``a`` (mostly static memory) carries over from the previous bucket, so a new bucket
  needs one measurement before its first prediction.
* A longer bucket never fits a larger batch: if bucket ``i`` is at least as long as ``j`` in
  both duration and tokens, every batch that fits ``i`` fits ``j`` and every batch that fails
  ``j`` fails ``i``. Buckets are searched longest first, so each result is a free lower bound
  (no trial needed) for the shorter buckets it dominates, and each failure an upper bound for
  longer ones. This holds for 1D plans (a chain) and 2D plans (a partial order).

Predictions are only hints: every bucket ends with a bracket ``lo`` (measured or implied to fit)
and ``hi`` (measured or implied to fail) with ``hi <= max(lo + 1, lo * (1 + tolerance))``. When
a prediction is wrong near the budget (allocator granularity bends the line a little), the next
trial is the tolerance edge on the wrong side, which usually closes the bracket; after four
guided trials the search falls back to geometric growth and bisection, so a probe whose memory
is not affine still converges. The chosen batch size is then ``floor(lo * (1 - margin))``, and
one more trial runs exactly that size (``verify_chosen``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

logger = logging.getLogger(__name__)


@dataclass(frozen=True, order=True)
class BucketShape:
    """The shape a bucket's batches are tested at: its maximum duration and maximum tokens."""

    max_duration: float  # seconds of audio per example (the bucket's upper edge)
    max_tokens: int  # decoder tokens per example: prompt + text + EOS (the bucket's upper edge)
    index: int = 0  # the bucket's index in its plan

    def covers(self, other: BucketShape) -> bool:
        """True when this shape is at least as long as ``other`` in both dimensions."""
        return self.max_duration >= other.max_duration and self.max_tokens >= other.max_tokens

    def describe(self) -> str:
        return f"bucket {self.index} ({self.max_duration:g} s, {self.max_tokens} tokens)"


@dataclass(frozen=True)
class Measurement:
    """One trial: a training step of ``batch_size`` examples at one bucket shape."""

    batch_size: int
    fits: bool
    peak_bytes: int | None  # None when the probe cannot tell (a real out-of-memory error)
    seconds: float  # wall time of the trial, including any process start


class MemoryProbe(Protocol):
    """Runs trial training steps; see `padless.batchsize.probes`."""

    name: str
    budget_bytes: int

    def measure(self, shape: BucketShape, batch_size: int) -> Measurement: ...

    def prepare(self, shapes: Sequence[BucketShape]) -> None:
        """Called once with every shape, in search order, before the first measurement."""


@dataclass(frozen=True)
class SearchConfig:
    """How hard to search and how much to hold back."""

    # Stop when the largest fitting size is known to within this relative error: the bracket
    # satisfies hi <= lo * (1 + tolerance) (or hi == lo + 1, which is exact).
    tolerance: float = 0.05
    # Safety margin taken off the largest fitting size: batch_size = floor(lo * (1 - margin)).
    # Covers what no probe sees exactly: allocator fragmentation that varies from step to step,
    # buffers of other components (data loader pinned memory, logging), memory of later steps.
    margin: float = 0.10
    # Largest batch size ever tried; a bucket that fits it is reported as capped.
    max_batch_size: int = 16384
    # Predict the crossing from the affine peak model (off: plain doubling and bisection, kept
    # for the ablation in bench/bench_oomptimizer.py).
    affine: bool = True
    # Derive bounds from already searched buckets (off: every bucket is searched from scratch).
    monotone: bool = True
    # Run one more trial at the chosen (margin-reduced) size, so its peak in the table is
    # measured and the size is known to run; costs one trial per bucket (a replay, for the
    # simulator).
    verify_chosen: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.tolerance < 1.0:
            raise ValueError(f"tolerance must be in (0, 1), got {self.tolerance}")
        if not 0.0 <= self.margin < 1.0:
            raise ValueError(f"margin must be in [0, 1), got {self.margin}")
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {self.max_batch_size}")


@dataclass(frozen=True)
class BucketResult:
    """The outcome for one bucket."""

    shape: BucketShape
    max_fitting: int  # largest batch size known to fit (measured, or implied by a longer bucket)
    batch_size: int  # what training should use: max_fitting minus the safety margin
    upper: int | None  # smallest batch size known not to fit; None when capped
    peak_bytes: float | None  # peak at `batch_size`: measured, or interpolated on the fitted line
    peak_measured: bool  # whether `peak_bytes` comes from a trial at exactly `batch_size`
    trials: tuple[Measurement, ...]  # in the order they ran

    @property
    def capped(self) -> bool:
        return self.upper is None

    @property
    def batch_audio_seconds(self) -> float:
        """Audio seconds in one batch of examples at the bucket's maximum duration."""
        return self.batch_size * self.shape.max_duration


@dataclass(frozen=True)
class SearchResult:
    buckets: tuple[BucketResult, ...]  # in the order of the shapes given to `search`
    seconds: float  # wall time of the whole search

    @property
    def num_trials(self) -> int:
        return sum(len(b.trials) for b in self.buckets)


class NoBatchFitsError(RuntimeError):
    """Even a single example of a bucket's maximum shape does not fit the memory budget."""


@dataclass
class _Line:
    """Peak memory as an affine function of batch size: ``peak(n) = intercept + slope * n``."""

    intercept: float
    slope: float

    @classmethod
    def fit(cls, points: Sequence[tuple[int, float]]) -> _Line | None:
        """Least squares through two or more ``(n, peak)`` points; None if not increasing."""
        if len({n for n, _ in points}) < 2:
            return None
        mean_n = sum(n for n, _ in points) / len(points)
        mean_y = sum(y for _, y in points) / len(points)
        var = sum((n - mean_n) ** 2 for n, _ in points)
        slope = sum((n - mean_n) * (y - mean_y) for n, y in points) / var
        return cls(mean_y - slope * mean_n, slope) if slope > 0 else None

    def largest_fitting(self, budget: float) -> int:
        return math.floor((budget - self.intercept) / self.slope)

    def at(self, n: int) -> float:
        return self.intercept + self.slope * n


#: Called after every trial with the bucket's shape and the measurement.
TrialCallback = Callable[[BucketShape, Measurement], None]


#: Model-guided trials per bucket before the search falls back to doubling and bisection.
_MAX_GUIDED_TRIALS = 4


@dataclass
class _Bracket:
    """What is known about one bucket while it is searched."""

    shape: BucketShape
    budget: int
    config: SearchConfig
    lo: int = 0  # largest size known to fit (0: none yet)
    hi: int | None = None  # smallest size known not to fit
    points: list[tuple[int, float]] = field(default_factory=list)  # (n, peak) measured here
    trials: list[Measurement] = field(default_factory=list)
    guided: int = 0  # trials chosen by the affine model so far
    expect_fit: bool | None = None  # what the model predicted for the pending guided trial
    surprised: bool = False  # the last guided trial went against the model's prediction

    def done(self) -> bool:
        if self.lo >= self.config.max_batch_size:
            return True
        if self.hi is None:
            return False
        return self.hi <= max(self.lo + 1, self.lo * (1.0 + self.config.tolerance))

    def record(self, m: Measurement) -> None:
        self.surprised = self.expect_fit is not None and m.fits != self.expect_fit
        self.expect_fit = None
        self.trials.append(m)
        if m.peak_bytes is not None:
            self.points.append((m.batch_size, float(m.peak_bytes)))
        if m.fits:
            self.lo = max(self.lo, m.batch_size)
        else:
            self.hi = m.batch_size if self.hi is None else min(self.hi, m.batch_size)
        if self.hi is not None and self.hi <= self.lo:
            # The probe contradicted monotonicity in batch size (noise at the edge, or a bound
            # implied by another bucket). Keep the largest size measured to fit.
            logger.warning(
                "%s: batch %d fits but %d does not; keeping %d",
                self.shape.describe(),
                self.lo,
                self.hi,
                self.lo,
            )
            self.hi = self.lo + 1

    def line(self, prior: _Line | None) -> _Line | None:
        """The affine model from this bucket's points, or the prior's intercept and one point."""
        line = _Line.fit(self.points)
        if line is not None:
            return line
        if self.points and prior is not None:
            n, peak = max(self.points)
            slope = (peak - prior.intercept) / n
            if slope > 0:
                return _Line(prior.intercept, slope)
        return None

    def next_size(self, prior: _Line | None, first_guess: int | None) -> int:
        upper = min(
            (self.hi - 1) if self.hi is not None else self.config.max_batch_size,
            self.config.max_batch_size,
        )
        lower = self.lo + 1
        guess: int | None = None
        tolerance = 1.0 + self.config.tolerance
        if self.surprised:
            # The model is off by a little near the budget (e.g. allocator segments): instead
            # of creeping by one, test the tolerance edge on the side it got wrong, which
            # closes the bracket if the answer is near.
            self.surprised = False
            if self.hi is None or self.trials[-1].fits:
                guess = max(lower, math.floor(self.lo * tolerance))
            else:
                guess = math.ceil(self.hi / tolerance)
        elif self.config.affine and self.guided < _MAX_GUIDED_TRIALS:
            line = self.line(prior)
            if line is not None:
                # The model says `predicted` fits and `predicted + 1` does not: test whichever
                # end of that pair is still unknown.
                predicted = line.largest_fitting(self.budget)
                guess = max(predicted, lower)
                self.expect_fit = guess <= predicted
            elif not self.points and first_guess is not None:
                guess = first_guess
            if guess is not None:
                self.guided += 1
        if guess is None:
            if self.hi is None:
                guess = max(1, 2 * self.lo)  # grow geometrically
            else:
                guess = math.isqrt(self.lo * self.hi) if self.lo else self.hi // 2  # bisect
        return max(lower, min(upper, guess))


def search(
    shapes: Sequence[BucketShape],
    probe: MemoryProbe,
    config: SearchConfig | None = None,
    on_trial: TrialCallback | None = None,
    on_bucket: Callable[[BucketResult], None] | None = None,
) -> SearchResult:
    """Find the per-bucket batch sizes for ``shapes`` (any order; results come back in it)."""
    config = config or SearchConfig()
    start = time.perf_counter()
    budget = probe.budget_bytes
    # Longest first (a linear extension of the "covers" order): each result bounds the shorter
    # buckets from below.
    order = sorted(range(len(shapes)), key=lambda i: shapes[i], reverse=True)
    probe.prepare([shapes[i] for i in order])
    results: dict[int, BucketResult] = {}
    prior: _Line | None = None
    slopes = _SlopeModel()
    for i in order:
        shape = shapes[i]
        bracket = _Bracket(shape, budget, config)
        if config.monotone:
            for done in results.values():
                if done.shape.covers(shape):
                    bracket.lo = max(bracket.lo, done.max_fitting)
                if shape.covers(done.shape) and done.upper is not None:
                    bracket.hi = done.upper if bracket.hi is None else min(bracket.hi, done.upper)
        first_guess = _first_guess(slopes, shape, prior, budget)
        while not bracket.done():
            n = bracket.next_size(prior, first_guess)
            m = probe.measure(shape, n)
            logger.info(
                "%s: batch %d %s (peak %s bytes, %.2f s)",
                shape.describe(),
                n,
                "fits" if m.fits else "does not fit",
                m.peak_bytes,
                m.seconds,
            )
            bracket.record(m)
            if on_trial is not None:
                on_trial(shape, m)
            if bracket.lo == 0 and bracket.hi == 1:
                peak = f"; its peak is {m.peak_bytes / 2**30:.2f} GiB" if m.peak_bytes else ""
                raise NoBatchFitsError(
                    f"{shape.describe()}: a single example does not fit the memory budget of "
                    f"{budget / 2**30:.2f} GiB{peak}. Lower the plan's maximum duration/tokens "
                    "or raise the budget."
                )
        chosen = _chosen(bracket.lo, config)
        if config.verify_chosen and chosen not in {m.batch_size for m in bracket.trials}:
            m = probe.measure(shape, chosen)
            bracket.trials.append(m)  # not `record`: the bracket is final
            if on_trial is not None:
                on_trial(shape, m)
            if not m.fits:
                logger.warning(
                    "%s: the chosen batch size %d did not fit on verification",
                    shape.describe(),
                    chosen,
                )
        result = _finish(bracket, prior, config)
        logger.info(
            "%s: largest fitting batch %d, chosen %d, %d trials",
            shape.describe(),
            result.max_fitting,
            result.batch_size,
            len(result.trials),
        )
        results[i] = result
        line = bracket.line(prior)
        if line is not None and bracket.points:
            prior = line
            slopes.add(shape, line.slope)
        if on_bucket is not None:
            on_bucket(result)
    return SearchResult(tuple(results[i] for i in range(len(shapes))), time.perf_counter() - start)


class _SlopeModel:
    """Predicts a new bucket's bytes per example from the buckets searched just before it.

    Per-example activation memory is close to ``alpha * duration + beta * tokens`` locally (the
    encoder grows with duration, the decoder with tokens; attention's quadratic terms bend this
    slowly), so a least-squares fit over the last few buckets predicts the next slope well
    enough that its first trial usually lands on the answer.
    """

    window = 4

    def __init__(self) -> None:
        self.history: list[tuple[float, float, float]] = []  # (duration, tokens, slope)

    def add(self, shape: BucketShape, slope: float) -> None:
        self.history.append((shape.max_duration, float(shape.max_tokens), slope))

    def predict(self, shape: BucketShape) -> float | None:
        recent = self.history[-self.window :]
        if not recent:
            return None
        d, u = shape.max_duration, float(shape.max_tokens)
        if len(recent) >= 2:
            # Normal equations of slope ~ alpha * d + beta * u (no intercept).
            sdd = sum(x * x for x, _, _ in recent)
            suu = sum(y * y for _, y, _ in recent)
            sdu = sum(x * y for x, y, _ in recent)
            sds = sum(x * z for x, _, z in recent)
            sus = sum(y * z for _, y, z in recent)
            det = sdd * suu - sdu * sdu
            if det > 1e-9 * sdd * suu:
                alpha = (sds * suu - sus * sdu) / det
                beta = (sus * sdd - sds * sdu) / det
                predicted = alpha * d + beta * u
                if predicted > 0:
                    return predicted
        # One bucket (or collinear shapes): scale the last slope by the duration ratio.
        last_d, _, last_slope = recent[-1]
        return last_slope * d / last_d if last_d > 0 else None


def _first_guess(
    slopes: _SlopeModel, shape: BucketShape, prior: _Line | None, budget: int
) -> int | None:
    """A first batch size for a bucket that has no measurement of its own yet."""
    if prior is None:
        return None
    slope = slopes.predict(shape)
    if slope is None:
        return None
    return max(1, _Line(prior.intercept, slope).largest_fitting(budget))


def _chosen(lo: int, config: SearchConfig) -> int:
    return max(1, math.floor(min(lo, config.max_batch_size) * (1.0 - config.margin)))


def _finish(bracket: _Bracket, prior: _Line | None, config: SearchConfig) -> BucketResult:
    lo = min(bracket.lo, config.max_batch_size)
    chosen = _chosen(lo, config)
    measured = {m.batch_size: m.peak_bytes for m in bracket.trials if m.peak_bytes is not None}
    peak: float | None
    if chosen in measured:
        peak, exact = measured[chosen], True
    else:
        line = bracket.line(prior)
        peak, exact = (line.at(chosen) if line is not None else None), False
    return BucketResult(
        shape=bracket.shape,
        max_fitting=lo,
        batch_size=chosen,
        upper=bracket.hi if bracket.lo < config.max_batch_size else None,
        peak_bytes=peak,
        peak_measured=exact,
        trials=tuple(bracket.trials),
    )
