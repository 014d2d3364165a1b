"""The dynamic bucketing sampler: coverage, equal counts, limits, sync, concurrency, resume."""

from __future__ import annotations

import json
import threading
from collections import Counter
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from padless.data.errors import NoExamplesError
from padless.sampling.config import BATCHINGS, PlanConfig, SamplerConfig, SortedBatching
from padless.sampling.engine import LaneEngine
from padless.sampling.estimate import estimate_plan
from padless.sampling.filters import FilterConfig
from padless.sampling.plan import BucketPlan
from padless.sampling.policies import BucketBatchSizes, DurationBudget, FixedBatchSize
from padless.sampling.sampler import DynamicBucketingSampler
from padless.sampling.sources import ExampleList
from padless.sampling.sync import UniformDraw

FILTERS = FilterConfig(min_duration=0.5, max_duration=40.0, tps_max=25.0)


@pytest.fixture(scope="module")
def examples(examples_of):
    return examples_of(6000, 11)


def _plan(examples, k: int, s: int, bins: str = "optimal") -> BucketPlan:
    sample = examples[::3]
    dur = np.array([e.duration for e in sample])
    tok = np.array([e.num_tokens for e in sample])
    return estimate_plan(dur, tok, PlanConfig(k, s, bins), FILTERS)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def plan_1d(examples) -> BucketPlan:
    return _plan(examples, 12, 1)


@pytest.fixture(scope="module")
def plan_2d(examples) -> BucketPlan:
    return _plan(examples, 8, 2, "equal-duration")


def _table(plan: BucketPlan) -> BucketBatchSizes:
    # Fewer examples for longer buckets, as a batch-size search would find.
    return BucketBatchSizes(tuple(max(2, int(300 / b.max_duration)) for b in plan.buckets))


def _samplers(examples, plan, policy, config, world_size: int) -> list[DynamicBucketingSampler]:
    source = ExampleList(examples, shuffle=True, seed=5)
    return [
        DynamicBucketingSampler(source, plan, policy, config, rank=r, world_size=world_size)
        for r in range(world_size)
    ]


def _ids(batches) -> list[list[str]]:
    return [[e.id for e in b] for b in batches]


def _kept(examples, plan: BucketPlan) -> set[str]:
    f = plan.filters
    return {
        e.id
        for e in examples
        if f.min_duration <= e.duration <= f.max_duration and e.num_tokens / e.duration <= f.tps_max
    }


MODES = {
    "sorted-flexible": SamplerConfig(buffer_size=600),
    "random-strict-uniform": SamplerConfig.paper(buffer_size=600),
    "sorted-nosync": SamplerConfig(buffer_size=600, sync=False),
    "concurrent": SamplerConfig(buffer_size=600, concurrent=True),
    "sorted-spread": SamplerConfig(buffer_size=600, batching=SortedBatching(spread=1.3)),
    "separate-drains": SamplerConfig(buffer_size=600, joint_drain_tolerance=0.0),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("world_size", [1, 3])
@pytest.mark.parametrize("policy_name", ["duration", "fixed", "table"])
def test_every_example_once_and_equal_batch_counts(
    examples, plan_2d, mode, world_size, policy_name
) -> None:
    policy = {
        "duration": DurationBudget(120.0),
        "fixed": FixedBatchSize(7),
        "table": _table(plan_2d),
    }[policy_name]
    samplers = _samplers(examples, plan_2d, policy, MODES[mode], world_size)
    per_rank = [list(s) for s in samplers]
    assert len({len(b) for b in per_rank}) == 1, [len(b) for b in per_rank]
    seen = Counter(e.id for batches in per_rank for b in batches for e in b)
    assert max(seen.values()) == 1
    dropped = Counter[str]()
    for s in samplers:
        dropped.update(s.dropped)
    expected = _kept(examples, plan_2d)
    # Everything kept by the filters is yielded, except what assignment or balancing dropped.
    assert set(seen) <= expected
    assert len(expected) - len(seen) == dropped["strict_tokens"] + dropped["rank_balance"]
    assert dropped["rank_balance"] < world_size
    for batches in per_rank:
        for b in batches:
            _assert_within_limits(b, policy, plan_2d)


def _assert_within_limits(batch, policy, plan) -> None:
    assert batch
    if isinstance(policy, DurationBudget):
        assert len(batch) * max(e.duration for e in batch) <= policy.max_duration
    elif isinstance(policy, FixedBatchSize):
        assert len(batch) <= policy.batch_size
    else:
        from padless.sampling.assign import BucketAssigner

        dur = np.array([e.duration for e in batch])
        tok = np.array([e.num_tokens for e in batch])
        buckets = set(BucketAssigner(plan, "flexible").assign(dur, tok).tolist())
        assert len(batch) <= min(policy.batch_sizes[b] for b in buckets)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(0, 400),
    world_size=st.integers(1, 5),
    buffer=st.integers(8, 300),
    batch=st.integers(1, 9),
    batching=st.sampled_from(["sorted", "random"]),
    seed=st.integers(0, 3),
)
def test_exactly_once_property(
    examples, plan_1d, n, world_size, buffer, batch, batching, seed
) -> None:
    config = SamplerConfig(
        buffer_size=buffer, batching=BATCHINGS[batching](), seed=seed, ramp_steps=5
    )
    data = examples[:n]
    samplers = _samplers(data, plan_1d, FixedBatchSize(batch), config, world_size)
    kept = len(_kept(data, plan_1d))
    if 0 < kept < world_size:  # no step can give every rank an example: an error, not 0 steps
        with pytest.raises(NoExamplesError, match="were dropped"):
            list(samplers[0])
        return
    per_rank = [list(s) for s in samplers]
    assert len({len(b) for b in per_rank}) == 1
    seen = Counter(e.id for batches in per_rank for b in batches for e in b)
    assert max(seen.values(), default=1) == 1
    balance = sum(s.dropped["rank_balance"] for s in samplers)
    assert len(seen) + balance == kept
    assert balance < world_size  # ranks hold at most one example more than another


def test_rank_balance_drops_fewer_than_world_size_with_batch_size_one(examples, plan_1d) -> None:
    data = examples[:103]  # 103 = 25 * 4 + 3: three ranks hold one example more
    samplers = _samplers(data, plan_1d, FixedBatchSize(1), SamplerConfig(buffer_size=50), 4)
    counts = [len(list(s)) for s in samplers]
    kept = len(_kept(data, plan_1d))
    assert len(set(counts)) == 1
    assert sum(s.dropped["rank_balance"] for s in samplers) == kept - 4 * counts[0] < 4


@pytest.mark.parametrize(
    "sizes",
    [[0, 0, 3, 2] + [1] * 12, [0, 4, 3, 2, 2, 2, 2, 2]],
    ids=["17-on-16-ranks", "17-on-8-ranks"],
)
@pytest.mark.parametrize("sync", [True, False])
def test_rank_balance_lends_batches_instead_of_dropping(examples, plan_2d, sizes, sync) -> None:
    """Regression: a rank without data made every rank yield 0 batches (all 17 examples
    dropped, on 16 ranks and on 8). Ranks with extra batches or examples lend them to ranks
    short of the count, so nothing is dropped here."""
    kept = _kept(examples, plan_2d)
    data = [e for e in examples if e.id in kept][:17]
    bounds = np.cumsum([0, *sizes])
    per_rank = [data[a:b] for a, b in pairwise(bounds)]

    class Uneven(ExampleList):
        def __call__(self, *, rank: int, world_size: int) -> ExampleList:
            return ExampleList(per_rank[rank])

    config = SamplerConfig(sync=sync)
    samplers = [
        DynamicBucketingSampler(
            Uneven([]), plan_2d, DurationBudget(60.0), config, rank=r, world_size=len(sizes)
        )
        for r in range(len(sizes))
    ]
    out = [_ids(s) for s in samplers]
    assert len({len(b) for b in out}) == 1 and len(out[0]) >= 1
    seen = Counter(i for batches in out for b in batches for i in b)
    assert max(seen.values()) == 1 and set(seen) == {e.id for e in data}
    assert sum(s.dropped.total() for s in samplers) == 0


@pytest.mark.parametrize("buffer_size", [40, 2000])
def test_batches_are_full_until_the_data_runs_out(examples, plan_1d, buffer_size) -> None:
    """Partial batches only come once the stream is exhausted, also when the buffer is too
    small to hold a full batch in any bucket (it grows instead)."""
    policy = DurationBudget(200.0)
    config = SamplerConfig(buffer_size=buffer_size)
    engine = LaneEngine(ExampleList(examples), plan_1d, policy, config, rank=0, epoch=0)
    full_before = partial_after = 0
    while (batch := engine.next_batch()) is not None:
        if not engine.exhausted:
            assert batch.full
            full_before += 1
        partial_after += not batch.full
    assert full_before > 100 and partial_after <= 2 * len(plan_1d)


def test_sync_takes_the_drawn_bucket_wherever_it_is_ready(examples, plan_2d) -> None:
    """Step all ranks' engines together and check each choice against the readiness each
    rank had at that step."""
    config = SamplerConfig(buffer_size=500, bucket_draw=UniformDraw())
    policy = DurationBudget(150.0)
    source = ExampleList(examples, shuffle=True, seed=1)
    engines = [
        LaneEngine(source(rank=r, world_size=4), plan_2d, policy, config, rank=r, epoch=0)
        for r in range(4)
    ]
    agreed = fallbacks = 0
    while True:
        ready = []
        for eng in engines:
            eng.refill()
            counts, sums = eng.buffer.counts, eng.buffer.cost_sums
            ready.append((counts > 0) if eng.exhausted else policy.ready(counts, sums))
        batches = [eng.next_batch() for eng in engines]
        if any(b is None for b in batches):
            break
        drawn = {b.drawn for b in batches}
        assert len(drawn) == 1  # one shared draw
        d = drawn.pop()
        for r, b in enumerate(batches):
            if ready[r][d]:
                assert b.bucket == d
            else:
                fallbacks += 1
                candidates = np.flatnonzero(ready[r])
                nearest = np.abs(candidates - d).min()
                assert abs(b.bucket - d) == nearest
        agreed += all(ready[r][d] for r in range(4))
    assert agreed > 0 and fallbacks > 0


def _agreement(samplers) -> list[bool]:
    """Per step: did every rank take its batch from the same bucket?"""
    iters = [iter(s) for s in samplers]
    same = []
    while True:
        batches = [next(it, None) for it in iters]
        if any(b is None for b in batches):
            assert all(b is None for b in batches)  # equal counts
            return same
        same.append(len({s.last_batch.bucket for s in samplers}) == 1)


def test_ranks_stay_in_the_same_bucket_for_the_whole_epoch(examples, plan_2d) -> None:
    policy = DurationBudget(120.0)
    config = SamplerConfig(buffer_size=800)
    inflow = _agreement(_samplers(examples, plan_2d, policy, config, 4))
    uniform_cfg = SamplerConfig(buffer_size=800, bucket_draw=UniformDraw())
    uniform = _agreement(_samplers(examples, plan_2d, policy, uniform_cfg, 4))
    # While the buffer fills (ramp_steps), buckets hold few batches and ranks fall back more.
    full = inflow[config.ramp_steps :]
    assert np.mean(full) > 0.97 and np.mean(inflow) > np.mean(uniform)
    tail = inflow[-len(inflow) // 5 :]  # the buffers' drain: the joint drain keeps ranks together
    assert np.mean(tail) > 0.97


def test_joint_drain_yields_equal_counts_with_unequal_rank_data(examples, plan_2d) -> None:
    """Ranks whose data differ a lot in size still end together (joint drain), every example
    once."""
    per_rank = [examples[:900], examples[900:2400], examples[2400:2700]]

    class Uneven(ExampleList):
        def __call__(self, *, rank: int, world_size: int) -> ExampleList:
            return ExampleList(per_rank[rank])

    config = SamplerConfig(buffer_size=1000)
    samplers = [
        DynamicBucketingSampler(
            Uneven([]), plan_2d, DurationBudget(120.0), config, rank=r, world_size=3
        )
        for r in range(3)
    ]
    out = [_ids(s) for s in samplers]
    assert len({len(b) for b in out}) == 1
    seen = Counter(i for batches in out for b in batches for i in b)
    assert max(seen.values()) == 1
    assert len(seen) == len(_kept(examples[:2700], plan_2d)) - sum(
        s.dropped["strict_tokens"] for s in samplers
    )


def test_concurrent_reading_yields_the_same_batches(examples, plan_2d) -> None:
    base = SamplerConfig(buffer_size=700, chunk_size=64)
    for world_size in (1, 2):
        a = [_ids(s) for s in _samplers(examples, plan_2d, DurationBudget(150.0), base, world_size)]
        conc = SamplerConfig(buffer_size=700, chunk_size=64, concurrent=True, queue_chunks=3)
        b = [_ids(s) for s in _samplers(examples, plan_2d, DurationBudget(150.0), conc, world_size)]
        assert a == b


def test_epochs_and_seeds_change_the_batches(examples, plan_1d) -> None:
    (s,) = _samplers(examples, plan_1d, DurationBudget(150.0), SamplerConfig(buffer_size=500), 1)
    e0 = _ids(s)
    again = _ids(s)
    s.set_epoch(1)
    e1 = _ids(s)
    assert e0 == again and e0 != e1
    assert sorted(map(sorted, e0)) != sorted(map(sorted, e1))


# ----------------------------------------------------------------------------------------- resume

RESUME_MODES = {
    "1d-sorted": ("1d", SamplerConfig(buffer_size=400, chunk_size=32), "duration"),
    "2d-random-strict": ("2d", SamplerConfig.paper(buffer_size=400, chunk_size=32), "duration"),
    "2d-table": ("2d", SamplerConfig(buffer_size=400, chunk_size=32), "table"),
    "concurrent": (
        "2d",
        SamplerConfig(buffer_size=400, chunk_size=32, concurrent=True),
        "duration",
    ),
    "nosync-fixed": ("1d", SamplerConfig(buffer_size=400, chunk_size=32, sync=False), "fixed"),
    "2d-spread": (
        "2d",
        SamplerConfig(buffer_size=400, chunk_size=32, batching=SortedBatching(spread=1.3)),
        "duration",
    ),
}


def _policy(name, plan):
    return {"duration": DurationBudget(150.0), "fixed": FixedBatchSize(6), "table": _table(plan)}[
        name
    ]


@pytest.mark.parametrize("mode", RESUME_MODES)
@pytest.mark.parametrize("world_size", [1, 3])
def test_resume_at_any_step_yields_identical_remaining_batches(
    examples, plan_1d, plan_2d, mode, world_size
) -> None:
    plan_name, config, policy_name = RESUME_MODES[mode]
    plan = plan_1d if plan_name == "1d" else plan_2d
    data = examples[:2500]
    policy = _policy(policy_name, plan)
    for rank in range(world_size):

        def make(rank: int = rank) -> DynamicBucketingSampler:
            source = ExampleList(data, shuffle=True, seed=2)
            return DynamicBucketingSampler(
                source, plan, policy, config, rank=rank, world_size=world_size
            )

        reference = _ids(make())
        n = len(reference)
        for k in sorted({0, 1, n // 3, n - 20, n - 3, n - 1, n} & set(range(n + 1))):
            sampler = make()
            it = iter(sampler)
            head = [[e.id for e in next(it)] for _ in range(k)]
            state = json.loads(json.dumps(sampler.state_dict()))  # must survive JSON
            sampler.close()
            fresh = make()
            fresh.load_state_dict(state)
            assert head + _ids(fresh) == reference, (rank, k)


def test_resume_in_infinite_mode_across_data_epochs(examples, plan_1d) -> None:
    data = examples[:300]
    config = SamplerConfig(buffer_size=100, chunk_size=16, infinite=True)

    def make() -> DynamicBucketingSampler:
        return DynamicBucketingSampler(
            ExampleList(data, shuffle=True), plan_1d, FixedBatchSize(5), config
        )

    def take(sampler, n):
        it = iter(sampler)
        return [[e.id for e in next(it)] for _ in range(n)]

    reference = take(make(), 260)  # 1300 examples: more than 4 passes over the data
    counts = Counter(i for b in reference for i in b)
    # Every kept example comes back, at most once per data epoch read (5 were started).
    assert set(counts) == _kept(data, plan_1d) and max(counts.values()) <= 5
    sampler = make()
    head = take(sampler, 130)
    state = sampler.state_dict()
    sampler.close()
    fresh = make()
    fresh.load_state_dict(state)
    assert head + take(fresh, 130) == reference


def test_resume_cost_does_not_depend_on_the_position(examples, plan_1d) -> None:
    """Restoring reads only what comes after the saved position, and the state holds only
    the buffer: no replay of the epoch."""

    class CountingList(ExampleList):
        served = 0

        def open(self, epoch=0, position=None):
            it = super().open(epoch, position)
            take = it.take

            def counted(n):
                out = take(n)
                CountingList.served += len(out)
                return out

            it.take = counted  # type: ignore[method-assign]
            return it

    config = SamplerConfig(buffer_size=300, chunk_size=32)

    def make() -> DynamicBucketingSampler:
        return DynamicBucketingSampler(CountingList(examples), plan_1d, FixedBatchSize(4), config)

    sampler = make()
    it = iter(sampler)
    for _ in range(900):
        next(it)
    state = sampler.state_dict()
    sampler.close()
    assert sum(len(x) for x in state["engine"]["lists"]) <= config.buffer_size
    CountingList.served = 0
    fresh = make()
    fresh.load_state_dict(state)
    next(iter(fresh))
    assert CountingList.served <= config.chunk_size  # one chunk after the saved position


def test_state_dict_can_rewind_over_prefetched_batches(examples, plan_1d) -> None:
    config = SamplerConfig(buffer_size=400, resume_lookback=8)

    def make() -> DynamicBucketingSampler:
        return DynamicBucketingSampler(
            ExampleList(examples[:1500]), plan_1d, FixedBatchSize(6), config
        )

    reference = _ids(make())
    sampler = make()
    it = iter(sampler)
    for _ in range(50):
        next(it)
    state = sampler.state_dict(consumed_steps=45)  # a DataLoader prefetched 5 more
    with pytest.raises(ValueError, match="resume_lookback"):
        sampler.state_dict(consumed_steps=30)
    sampler.close()
    fresh = make()
    fresh.load_state_dict(state)
    assert reference[:45] + _ids(fresh) == reference


def test_state_from_another_plan_or_rank_is_refused(examples, plan_1d, plan_2d) -> None:
    sampler = DynamicBucketingSampler(ExampleList(examples), plan_1d, FixedBatchSize(4))
    next(iter(sampler))
    state = sampler.state_dict()
    sampler.close()
    other_plan = DynamicBucketingSampler(ExampleList(examples), plan_2d, FixedBatchSize(4))
    with pytest.raises(ValueError, match="plan"):
        other_plan.load_state_dict(state)
    other_rank = DynamicBucketingSampler(
        ExampleList(examples), plan_1d, FixedBatchSize(4), rank=1, world_size=2
    )
    with pytest.raises(ValueError, match="rank"):
        other_rank.load_state_dict(state)


def test_finished_epoch_state_resumes_at_the_next_epoch(examples, plan_1d) -> None:
    def make() -> DynamicBucketingSampler:
        return DynamicBucketingSampler(ExampleList(examples[:500]), plan_1d, FixedBatchSize(8))

    sampler = make()
    list(sampler)
    state = sampler.state_dict()
    assert state["fresh"] and state["epoch"] == 1
    fresh = make()
    fresh.load_state_dict(state)
    nxt = make()
    nxt.set_epoch(1)
    assert _ids(fresh) == _ids(nxt)


# ------------------------------------------------------------------------------- concurrency


class Exploding(ExampleList):
    """A source whose reading fails after ``after`` examples (a corrupt manifest line)."""

    def __init__(self, examples, after: int, **kw) -> None:
        super().__init__(examples, **kw)
        self.after = after

    def __call__(self, *, rank: int, world_size: int) -> Exploding:
        return Exploding(self.examples, self.after, rank=rank, world_size=world_size)

    def open(self, epoch=0, position=None):
        it = super().open(epoch, position)
        take = it.take

        def failing(n):
            if it.position + n > self.after:
                raise ValueError("manifest.jsonl:42: bad JSON")
            return take(n)

        it.take = failing  # type: ignore[method-assign]
        return it


@pytest.mark.parametrize("concurrent", [False, True])
def test_reader_errors_reach_the_consumer(examples, plan_1d, concurrent) -> None:
    config = SamplerConfig(buffer_size=400, chunk_size=32, concurrent=concurrent)
    sampler = DynamicBucketingSampler(
        Exploding(examples, after=1000), plan_1d, FixedBatchSize(4), config
    )
    with pytest.raises(ValueError, match=r"manifest\.jsonl:42: bad JSON"):
        for _ in sampler:
            pass
    assert not _sampler_threads()


def _sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("padless-sampler")]


def test_threads_stop_when_iteration_stops_early(examples, plan_1d) -> None:
    config = SamplerConfig(buffer_size=400, chunk_size=16, concurrent=True, queue_chunks=2)
    samplers = _samplers(examples, plan_1d, FixedBatchSize(4), config, 3)  # reader + replay threads
    iters = [iter(s) for s in samplers]
    for it in iters:
        next(it)
    assert _sampler_threads()
    for it in iters:
        it.close()  # what a `break` out of the for loop does
    assert not _sampler_threads()


def test_works_as_a_dataloader_sampler(examples, plan_1d) -> None:
    import torch.utils.data

    class Lengths(torch.utils.data.Dataset):
        def __getitem__(self, batch):
            return torch.tensor([e.duration for e in batch])

    sampler = DynamicBucketingSampler(ExampleList(examples[:800]), plan_1d, FixedBatchSize(10))
    loader = torch.utils.data.DataLoader(Lengths(), batch_size=None, sampler=sampler)
    sizes = [len(t) for t in loader]
    assert sum(sizes) == len(_kept(examples[:800], plan_1d)) and max(sizes) == 10


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    mode=st.sampled_from(sorted(RESUME_MODES)),
    world_size=st.integers(1, 3),
    rank_seed=st.integers(0, 2),
    fraction=st.floats(0.0, 1.0),
)
def test_resume_property(examples, plan_1d, plan_2d, mode, world_size, rank_seed, fraction) -> None:
    """Resume at an arbitrary step of an arbitrary rank and mode: the same remaining batches."""
    plan_name, config, policy_name = RESUME_MODES[mode]
    plan = plan_1d if plan_name == "1d" else plan_2d
    policy = _policy(policy_name, plan)
    rank = rank_seed % world_size

    def make() -> DynamicBucketingSampler:
        source = ExampleList(examples[:900], shuffle=True, seed=3)
        return DynamicBucketingSampler(
            source, plan, policy, config, rank=rank, world_size=world_size
        )

    reference = _ids(make())
    k = int(fraction * len(reference))
    sampler = make()
    it = iter(sampler)
    head = [[e.id for e in next(it)] for _ in range(k)]
    state = json.loads(json.dumps(sampler.state_dict()))
    sampler.close()
    fresh = make()
    fresh.load_state_dict(state)
    assert head + _ids(fresh) == reference


def test_an_epoch_that_drops_everything_is_an_error_and_most_a_warning(
    examples, plan_1d, caplog: pytest.LogCaptureFixture
) -> None:
    from padless.data.errors import NoExamplesError
    from padless.data.example import Example

    too_long = [Example(f"long-{i}", 45.0, None, "x", "en", "en", num_tokens=9) for i in range(5)]
    kept = [e for e in examples if e.id in _kept(examples, plan_1d)][:3]
    (only_dropped,) = _samplers(too_long, plan_1d, FixedBatchSize(2), SamplerConfig(), 1)
    with pytest.raises(NoExamplesError, match=r"rank 0, epoch 0: all 5 examples were dropped"):
        list(only_dropped)
    (mostly,) = _samplers(too_long + kept, plan_1d, FixedBatchSize(2), SamplerConfig(), 1)
    with caplog.at_level("WARNING", logger="padless.sampling"):
        assert sum(len(b) for b in mostly) == 3
    assert "5 of 8 examples read were dropped" in caplog.text
