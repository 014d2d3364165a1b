"""Split over (rank, world_size, worker, num_workers): every example exactly once per epoch,
per-epoch shuffled order, reproducible from the seed."""

from __future__ import annotations

import gzip
import itertools
import tempfile
from collections import Counter
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from padless.data.split import plan_slot
from padless.data.stream import ExampleStream


def write_files(
    root: Path, line_counts: list[int], gzipped: list[bool]
) -> tuple[list[str], list[str]]:
    """Manifests with uneven line lengths; returns (paths, all ids)."""
    paths, ids = [], []
    for f, (count, gz) in enumerate(zip(line_counts, gzipped, strict=True)):
        rows = []
        for j in range(count):
            ids.append(f"f{f}-{j}")
            text = "x" * ((7 * j + 3 * f) % 23)
            rows.append(orjson.dumps({"id": ids[-1], "duration": 1.0 + j % 5, "text": text}))
        data = b"".join(r + b"\n" for r in rows)
        path = root / f"m{f}.jsonl{'.gz' if gz else ''}"
        path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
        paths.append(str(path))
    return paths, ids


def read_all_slots(paths: list[str], world_size: int, num_workers: int, **kw) -> list[list[str]]:
    epoch = kw.pop("epoch", 0)
    return [
        [
            e.id
            for e in ExampleStream(
                paths, rank=r, world_size=world_size, worker=w, num_workers=num_workers, **kw
            ).open(epoch)
        ]
        for r in range(world_size)
        for w in range(num_workers)
    ]


layouts = st.lists(st.tuples(st.integers(0, 30), st.booleans()), min_size=1, max_size=7)


@settings(max_examples=60, deadline=None)
@given(
    layout=layouts,
    world_size=st.integers(1, 4),
    num_workers=st.integers(1, 3),
    seed=st.integers(0, 2**31),
    epoch=st.integers(0, 5),
    block_bytes=st.sampled_from([1, 40, 333, 4096, 1 << 20]),
    shuffle=st.booleans(),
)
def test_every_example_exactly_once_per_epoch(
    layout: list[tuple[int, bool]],
    world_size: int,
    num_workers: int,
    seed: int,
    epoch: int,
    block_bytes: int,
    shuffle: bool,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths, ids = write_files(Path(tmp), [n for n, _ in layout], [gz for _, gz in layout])
        slots = read_all_slots(
            paths,
            world_size,
            num_workers,
            seed=seed,
            epoch=epoch,
            block_bytes=block_bytes,
            shuffle=shuffle,
        )
        assert Counter(i for slot in slots for i in slot) == Counter(ids)
        # the same seed gives the same split
        again = read_all_slots(
            paths,
            world_size,
            num_workers,
            seed=seed,
            epoch=epoch,
            block_bytes=block_bytes,
            shuffle=shuffle,
        )
        assert again == slots


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 5000), min_size=1, max_size=12),
    num_slots=st.integers(1, 16),
    block_bytes=st.integers(1, 3000),
    seed=st.integers(0, 10**6),
    epoch=st.integers(0, 10),
)
def test_byte_ranges_partition_every_file(
    sizes: list[int], num_slots: int, block_bytes: int, seed: int, epoch: int
) -> None:
    """Seekable files: the slots' byte ranges tile each file exactly, and slot loads differ by
    at most one byte."""
    covered: dict[int, list[tuple[int, int]]] = {f: [] for f in range(len(sizes))}
    loads = []
    for slot in range(num_slots):
        pieces = plan_slot(
            sizes,
            [True] * len(sizes),
            slot=slot,
            num_slots=num_slots,
            epoch=epoch,
            seed=seed,
            shuffle=True,
            block_bytes=block_bytes,
        )
        loads.append(sum(p.end - p.start for p in pieces))
        for p in pieces:
            assert p.stride == 1 and p.start < p.end
            covered[p.file].append((p.start, p.end))
    for f, ranges in covered.items():
        ranges.sort()
        assert sum(e - s for s, e in ranges) == sizes[f]
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
        if ranges:
            assert ranges[0][0] == 0 and ranges[-1][1] == sizes[f]
    assert max(loads) - min(loads) <= 1


def test_compressed_files_are_dealt_whole_or_strided() -> None:
    sizes, seekable = [100, 300, 200, 50, 400], [False] * 5
    plans = [
        plan_slot(
            sizes, seekable, slot=s, num_slots=2, epoch=0, seed=1, shuffle=True, block_bytes=64
        )
        for s in range(2)
    ]
    assert sorted(p.file for plan in plans for p in plan) == [0, 1, 2, 3, 4]  # whole files
    assert all(p.stride == 1 for plan in plans for p in plan)
    loads = [sum(sizes[p.file] for p in plan) for plan in plans]
    assert abs(loads[0] - loads[1]) <= max(sizes)
    # Fewer files than slots: every slot reads every file with its own phase.
    plans = [
        plan_slot(
            sizes[:2],
            seekable[:2],
            slot=s,
            num_slots=3,
            epoch=0,
            seed=1,
            shuffle=True,
            block_bytes=64,
        )
        for s in range(3)
    ]
    for plan in plans:
        assert sorted(p.file for p in plan) == [0, 1] and all(p.stride == 3 for p in plan)
    for k in range(2):
        assert sorted(plan[k].phase for plan in plans) == [0, 1, 2]


def test_epochs_reshuffle_the_block_order(tmp_path: Path) -> None:
    paths, _ = write_files(tmp_path, [20] * 10, [False] * 10)
    stream = ExampleStream(paths, world_size=1, block_bytes=1 << 20, seed=7)
    orders = [[p.file for p in stream.pieces(epoch)] for epoch in range(4)]
    assert all(sorted(order) == list(range(10)) for order in orders)
    assert len({tuple(order) for order in orders}) == 4  # every epoch its own order
    # ...reproducible from the seed, and a different seed gives a different order
    assert [p.file for p in ExampleStream(paths, seed=7).pieces(2)] == orders[2]
    assert [p.file for p in ExampleStream(paths, seed=8).pieces(2)] != orders[2]
    # shuffle=False keeps the given order
    assert [p.file for p in ExampleStream(paths, shuffle=False).pieces(3)] == list(range(10))


def test_rank_examples_are_balanced(tmp_path: Path) -> None:
    """One big manifest over 8 slots: nearly equal examples per slot (byte-balanced split)."""
    paths, ids = write_files(tmp_path, [4000], [False])
    counts = [len(slot) for slot in read_all_slots(paths, 4, 2, seed=0, block_bytes=4096)]
    assert sum(counts) == len(ids)
    assert max(counts) - min(counts) <= 0.05 * len(ids) / 8


@pytest.mark.parametrize(
    ("rank", "world_size", "worker", "num_workers"), [(2, 2, 0, 1), (0, 1, 1, 1), (-1, 2, 0, 1)]
)
def test_bad_slot_is_refused(
    tmp_path: Path, rank: int, world_size: int, worker: int, num_workers: int
) -> None:
    paths, _ = write_files(tmp_path, [3], [False])
    with pytest.raises(ValueError, match="need 0 <= rank < world_size"):
        ExampleStream(
            paths, rank=rank, world_size=world_size, worker=worker, num_workers=num_workers
        )
