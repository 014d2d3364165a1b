"""Step traces: a recorded step's events, and what counts as the same op structure."""

from __future__ import annotations

import random

import pytest

from padless.batchsize.allocator import CachingAllocatorModel
from padless.batchsize.trace import LOCAL_BASE, AffineTrace, StaticTrace, StepTrace
from padless.batchsize.tracker import FREE

MiB = 1 << 20
#: Events before the step (the model build): two allocations, slots 0 and 1.
STATIC = [(0, 8 * MiB), (1, 3 * MiB)]


def step_events(n: int, free_order: list[int]) -> list[tuple[int, int]]:
    """A step at batch size ``n``: five activations (slots 2..6), then a run of frees of
    them in ``free_order``, then one more allocation (slot 7) and its free."""
    sizes = [n * MiB, 3 * n * MiB, 2 * MiB, n * 5 * MiB, 7 * MiB]
    events = list(STATIC) + [(2 + i, size) for i, size in enumerate(sizes)]
    events += [(slot, FREE) for slot in free_order]
    events += [(7, n * 4 * MiB), (7, FREE)]
    return events


def local(slot: int) -> int:
    """A step's slot as `StepTrace` numbers it (step-local slots start at LOCAL_BASE)."""
    return slot - len(STATIC) + LOCAL_BASE


def record(n: int, free_order: list[int], marks: tuple[tuple[int, str], ...] = ()) -> StepTrace:
    return StepTrace.from_events(n, step_events(n, free_order), len(STATIC), list(marks), 0.0)


def test_order_of_a_run_of_frees_does_not_change_the_structure() -> None:
    """Autocast frees its cached weight copies in address order, so two recordings of the
    same step can free them in different orders; the traces must still be the same."""
    rng = random.Random(0)
    order = [2, 3, 4, 5, 6]
    reference = record(2, order)
    for _ in range(10):
        shuffled = rng.sample(order, len(order))
        trace = record(2, shuffled)
        assert trace.signature == reference.signature
        assert trace.slots.tolist() == reference.slots.tolist()
        assert trace.sizes.tolist() == reference.sizes.tolist()
    # And a pair recorded with different free orders replays a third size exactly.
    pair = AffineTrace.from_pair(record(2, [6, 2, 5, 3, 4]), record(3, [3, 4, 2, 6, 5]))
    direct = AffineTrace.constant(record(9, [5, 6, 4, 3, 2]))
    static = StaticTrace.from_events(STATIC)
    for allocator in (None, CachingAllocatorModel):
        replayed = pair.replay(9, static, allocator and allocator())
        expected = direct.replay(9, static, allocator and allocator())
        assert replayed == expected


def test_a_free_moved_across_an_allocation_is_a_different_structure() -> None:
    """Order matters once an allocation comes between two frees: it can reuse the block."""
    base = step_events(2, [2, 3, 4, 5, 6])
    moved = list(base)
    moved.insert(-1, moved.pop(len(STATIC) + 5))  # free slot 2 after slot 7's allocation
    a = StepTrace.from_events(2, base, len(STATIC), [], 0.0)
    b = StepTrace.from_events(2, moved, len(STATIC), [], 0.0)
    assert a.signature != b.signature


def test_runs_of_frees_stop_at_phase_marks() -> None:
    """Frees recorded after a phase change stay after it: each side is sorted on its own."""
    first_free = 5  # step-local index of the first free
    marks = ((len(STATIC) + first_free + 2, "backward"),)
    trace = record(2, [6, 5, 4, 3, 2], marks)
    frees = trace.slots[first_free : first_free + 5].tolist()
    assert frees == [local(5), local(6), local(2), local(3), local(4)]
    assert trace.phase_start("backward") == first_free + 2


@pytest.mark.parametrize("n", [2, 3])
def test_canonical_order_keeps_every_event(n: int) -> None:
    trace = record(n, [4, 2, 6, 3, 5])
    events = step_events(n, [2, 3, 4, 5, 6])[len(STATIC) :]
    recorded = zip(trace.slots.tolist(), trace.sizes.tolist(), strict=True)
    assert sorted(recorded) == sorted((local(slot), size) for slot, size in events)
