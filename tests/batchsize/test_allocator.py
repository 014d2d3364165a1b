"""The CUDA caching-allocator model: rounding, segments, best fit, coalescing, out-of-memory."""

from __future__ import annotations

import random

import pytest

from padless.batchsize.allocator import (
    LARGE_SEGMENT,
    SMALL_SEGMENT,
    CachingAllocatorModel,
    round_size,
    segment_size,
)

MiB = 1 << 20


def test_rounding_and_segment_sizes() -> None:
    assert round_size(1) == 512
    assert round_size(512) == 512
    assert round_size(513) == 1024
    assert segment_size(1 * MiB) == SMALL_SEGMENT  # small pool up to 1 MiB
    assert segment_size(1 * MiB + 512) == LARGE_SEGMENT  # mid-size requests share 20 MiB
    assert segment_size(10 * MiB) == 10 * MiB  # large requests: rounded to 2 MiB
    assert segment_size(11 * MiB) == 12 * MiB


def test_small_blocks_share_a_segment_and_are_reused() -> None:
    a = CachingAllocatorModel()
    for h in range(4):
        a.malloc(h, 1000)  # 1024 B blocks carved from one 2 MiB segment
    assert a.reserved == SMALL_SEGMENT and a.allocated == 4 * 1024
    a.free(1)
    a.malloc(9, 900)  # best fit: the freed 1024 B block, no new segment
    assert a.reserved == SMALL_SEGMENT and a.allocated == 4 * 1024


def test_freed_neighbours_coalesce() -> None:
    a = CachingAllocatorModel()
    for h in range(3):
        a.malloc(h, 4 * MiB)  # three 4 MiB blocks in one 20 MiB segment
    assert a.reserved == LARGE_SEGMENT
    a.free(0)
    a.free(1)
    a.malloc(7, 8 * MiB)  # fits only in the merged 8 MiB hole (the 8 MiB tail also fits)
    assert a.reserved == LARGE_SEGMENT
    a.malloc(8, 8 * MiB)
    assert a.reserved == LARGE_SEGMENT  # both 8 MiB requests fit: 0-8 merged and 12-20 tail


def test_fragmentation_causes_oom_below_the_allocated_limit() -> None:
    limit = 40 * MiB
    a = CachingAllocatorModel(limit)
    for h in range(10):
        a.malloc(h, 4 * MiB)  # two 20 MiB segments, 5 blocks each
    for h in range(0, 10, 2):
        a.free(h)  # 20 MiB free in total, but in 4 MiB holes
    assert a.allocated == 20 * MiB
    a.malloc(99, 12 * MiB)  # needs a new 12 MiB segment: 52 MiB > 40 MiB
    assert a.oom


def test_cached_segments_are_released_before_oom() -> None:
    limit = 40 * MiB
    a = CachingAllocatorModel(limit)
    a.malloc(0, 16 * MiB)
    a.malloc(1, 16 * MiB)
    a.free(0)  # its 16 MiB segment stays cached (reserved 32 MiB)
    assert a.cached_free == 16 * MiB and a.peak_in_use == 32 * MiB
    a.malloc(2, 20 * MiB)  # 32 + 20 > 40: release the cached segment, then it fits
    assert not a.oom and a.num_segments_released == 1
    assert a.reserved == 36 * MiB and a.cached_free == 0 and a.peak_in_use == 36 * MiB


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_workload_invariants(seed: int) -> None:
    rng = random.Random(seed)
    a = CachingAllocatorModel()
    live: dict[int, int] = {}
    for step in range(3000):
        if live and rng.random() < 0.45:
            handle = rng.choice(list(live))
            del live[handle]
            a.free(handle)
        else:
            size = rng.choice([100, 4096, 300_000, 2 * MiB, 15 * MiB])
            a.malloc(step, size)
            live[step] = round_size(size)
        # A block is not split when the rest would be too small (<= 1 MiB in the large pool),
        # so allocated bytes may exceed the rounded requests, as PyTorch counts them.
        assert sum(live.values()) <= a.allocated <= a.reserved - a.cached_free <= a.reserved
        assert a.reserved - a.cached_free <= a.peak_in_use
    for handle in list(live):
        a.free(handle)
    assert a.allocated == 0
    assert a.cached_free == a.reserved  # every segment coalesced back into one free block
    a._release_cached()
    assert a.reserved == 0 and a.cached_free == 0
