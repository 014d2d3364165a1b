"""A model of PyTorch's CUDA caching allocator, to turn tensor sizes into reserved memory.

A GPU runs out of memory when the caching allocator cannot get a new segment from the driver,
not when the sum of live tensors reaches the device size: requests are rounded up, carved out
of 2 MiB (small) or 20 MiB (mid-size) segments, freed blocks stay cached in their segment, and
a request no cached block fits needs a new segment even if the free bytes elsewhere would
suffice (fragmentation). This model replays every allocation and free of a simulated step
through the same rules (``c10/cuda/CUDACachingAllocator.cpp``, default settings):

* sizes round up to 512 B; requests <= 1 MiB use the small pool, larger ones the large pool;
* a new segment is 2 MiB (small pool), 20 MiB (requests < 10 MiB) or the request rounded up to
  2 MiB; the smallest cached free block that fits is used (best fit), and split when the rest
  is >= 512 B (small pool) or > 1 MiB (large pool);
* freed blocks merge with free neighbours in their segment and stay reserved;
* when a new segment would exceed the limit, every fully free cached segment is released
  first (what the allocator does before raising out-of-memory); only then is it an OOM.

Single stream; no ``expandable_segments``, ``max_split_size_mb`` or
``garbage_collection_threshold`` (PyTorch's defaults).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

MIN_BLOCK = 512
SMALL_REQUEST = 1 << 20  # requests up to 1 MiB come from the small pool
SMALL_SEGMENT = 2 << 20
LARGE_SEGMENT = 20 << 20  # segment size for large-pool requests under MIN_LARGE_ALLOC
MIN_LARGE_ALLOC = 10 << 20
ROUND_LARGE = 2 << 20


def round_size(size: int) -> int:
    """The block size the allocator hands out for a request of ``size`` bytes."""
    return MIN_BLOCK if size < MIN_BLOCK else MIN_BLOCK * -(-size // MIN_BLOCK)


def segment_size(size: int) -> int:
    """The size of a fresh segment for a (rounded) request of ``size`` bytes."""
    if size <= SMALL_REQUEST:
        return SMALL_SEGMENT
    if size < MIN_LARGE_ALLOC:
        return LARGE_SEGMENT
    return ROUND_LARGE * -(-size // ROUND_LARGE)


@dataclass(eq=False)
class _Block:
    segment: _Segment
    offset: int
    size: int
    free: bool = True
    prev: _Block | None = None
    next: _Block | None = None

    def key(self) -> tuple[int, int, int]:
        return (self.size, self.segment.id, self.offset)


@dataclass(eq=False)
class _Segment:
    id: int
    size: int
    small: bool
    first: _Block | None = None


@dataclass
class _Pool:
    free: list[tuple[int, int, int]] = field(default_factory=list)  # sorted block keys
    blocks: dict[tuple[int, int, int], _Block] = field(default_factory=dict)

    def add(self, block: _Block) -> None:
        key = block.key()
        bisect.insort(self.free, key)
        self.blocks[key] = block

    def remove(self, block: _Block) -> None:
        key = block.key()
        del self.free[bisect.bisect_left(self.free, key)]
        del self.blocks[key]

    def best_fit(self, size: int) -> _Block | None:
        i = bisect.bisect_left(self.free, (size, -1, -1))
        return self.blocks[self.free[i]] if i < len(self.free) else None


class CachingAllocatorModel:
    """Replays allocations; tracks allocated and reserved bytes, their peaks, and OOMs."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit  # bytes the allocator may reserve; None: unlimited
        self._pools = {True: _Pool(), False: _Pool()}
        self._segments: dict[int, _Segment] = {}
        self._live: dict[int, _Block] = {}  # handle -> block
        self._next_segment = 0
        self.allocated = 0
        self.reserved = 0
        self.cached_free = 0  # bytes of segments with no live block (released before an OOM)
        self.peak_allocated = 0
        self.peak_reserved = 0
        # Peak of reserved - cached_free: the segments the step cannot do without. This is what
        # a limit caps (an OOM means it would exceed the limit), and unlike peak_reserved it
        # does not depend on whether cached segments were released.
        self.peak_in_use = 0
        self.oom = False  # a request could not be met within the limit (it was met anyway)
        self.num_segments_released = 0

    def reset_peaks(self) -> None:
        self.peak_allocated = self.allocated
        self.peak_reserved = self.reserved
        self.peak_in_use = self.reserved - self.cached_free
        self.oom = False

    def malloc(self, handle: int, size: int) -> None:
        size = round_size(size)
        small = size <= SMALL_REQUEST
        pool = self._pools[small]
        block = pool.best_fit(size)
        if block is None:
            block = self._new_segment(size, small)
        else:
            pool.remove(block)
            if block.size == block.segment.size:  # a cached, fully free segment is used again
                self.cached_free -= block.size
        self.peak_in_use = max(self.peak_in_use, self.reserved - self.cached_free)
        remaining = block.size - size
        split = remaining >= MIN_BLOCK if small else remaining > SMALL_REQUEST
        if split:
            rest = _Block(block.segment, block.offset + size, remaining, True, block, block.next)
            if block.next is not None:
                block.next.prev = rest
            block.next = rest
            block.size = size
            pool.add(rest)
        block.free = False
        self._live[handle] = block
        self.allocated += block.size
        self.peak_allocated = max(self.peak_allocated, self.allocated)

    def free(self, handle: int) -> None:
        block = self._live.pop(handle, None)
        if block is None:  # a zero-byte storage: it never took a block
            return
        self.allocated -= block.size
        pool = self._pools[block.segment.small]
        block.free = True
        for neighbour in (block.prev, block.next):
            if neighbour is not None and neighbour.free:
                pool.remove(neighbour)
                if neighbour is block.prev:
                    neighbour.size += block.size
                    neighbour.next = block.next
                    if block.next is not None:
                        block.next.prev = neighbour
                    block = neighbour
                else:
                    block.size += neighbour.size
                    block.next = neighbour.next
                    if neighbour.next is not None:
                        neighbour.next.prev = block
        if block.size == block.segment.size:
            self.cached_free += block.size
        pool.add(block)

    def _new_segment(self, size: int, small: bool) -> _Block:
        grow = segment_size(size)
        if self.limit is not None and self.reserved + grow > self.limit:
            self._release_cached()
            if self.reserved + grow > self.limit:
                self.oom = True
        segment = _Segment(self._next_segment, grow, small)
        self._next_segment += 1
        block = _Block(segment, 0, grow)
        segment.first = block
        self._segments[segment.id] = segment
        self.reserved += grow
        self.peak_reserved = max(self.peak_reserved, self.reserved)
        return block

    def _release_cached(self) -> None:
        for segment in list(self._segments.values()):
            block = segment.first
            if block is not None and block.free and block.size == segment.size:
                self._pools[segment.small].remove(block)
                del self._segments[segment.id]
                self.reserved -= segment.size
                self.cached_free -= segment.size
                self.num_segments_released += 1
