"""Deterministic split of manifest and shard-index files over (rank, worker) slots.

Every reading slot -- one of ``world_size * num_workers``, numbered ``rank * num_workers +
worker`` -- computes the same epoch plan from (seed, epoch) and takes its own part of it, with
no communication. Every line (example) of every file goes to exactly one slot per epoch, and
each slot reads only its own bytes wherever the files allow it:

- **Seekable files** (plain JSON-lines manifests and shard indexes, local or fsspec): every
  file is cut into blocks of about ``block_bytes``; the blocks are shuffled per epoch and laid
  end to end; slot ``k`` takes bytes ``[k*T/S, (k+1)*T/S)`` of that sequence (T total bytes,
  S slots). A line belongs to the byte range that holds its first byte, so a reader seeks to
  its range, skips the partial line at the start and stops at the first line starting past the
  end. Slots get equal bytes (so nearly equal examples) however few or many files there are: a
  single big manifest splits as well as ten thousand shards.
- **Compressed files** (``.gz``: lhotse manifests) cannot be entered in the middle. With at
  least as many files as slots, whole files are dealt in the epoch's shuffled order, each to
  the slot with the fewest bytes so far. With fewer files than slots, every slot reads every
  file and keeps every S-th line (example-level striding: it costs each slot a full read).

A `Piece` is one unit of reading: a file and the byte range whose line starts it owns, or a
whole file with a stride and phase.
"""

from __future__ import annotations

import heapq
import random
import sys
from collections.abc import Sequence
from typing import NamedTuple

#: End of a piece that runs to the end of its file.
TO_END = sys.maxsize


class Piece(NamedTuple):
    """Lines of file ``file`` that start in bytes [start, end), keeping every ``stride``-th one
    from line ``phase`` on (stride 1: all of them)."""

    file: int
    start: int
    end: int
    stride: int = 1
    phase: int = 0


def slot_of(rank: int, world_size: int, worker: int, num_workers: int) -> tuple[int, int]:
    """(slot index, number of slots) of a dataloader worker on a rank."""
    if not (0 <= rank < world_size and 0 <= worker < num_workers):
        raise ValueError(
            f"need 0 <= rank < world_size and 0 <= worker < num_workers, got rank={rank}, "
            f"world_size={world_size}, worker={worker}, num_workers={num_workers}"
        )
    return rank * num_workers + worker, world_size * num_workers


def epoch_rng(seed: int, epoch: int) -> random.Random:
    """The RNG of an epoch's plan; identical in every process (string seeds hash with SHA-512,
    not with Python's per-process salted hash)."""
    return random.Random(f"padless.split:{seed}:{epoch}")


def plan_slot(
    sizes: Sequence[int],
    seekable: Sequence[bool],
    *,
    slot: int,
    num_slots: int,
    epoch: int,
    seed: int,
    shuffle: bool,
    block_bytes: int,
) -> list[Piece]:
    """The pieces slot ``slot`` reads in ``epoch``, in reading order.

    ``sizes`` are file sizes in bytes (compressed size for compressed files, used as weights).
    """
    if not 0 <= slot < num_slots:
        raise ValueError(f"slot {slot} out of range for {num_slots} slots")
    if block_bytes < 1:
        raise ValueError(f"block_bytes must be >= 1, got {block_bytes}")
    rng = epoch_rng(seed, epoch) if shuffle else None
    if all(seekable):
        return _byte_ranges(sizes, slot, num_slots, rng, block_bytes)
    return _whole_files(sizes, slot, num_slots, rng)


def _byte_ranges(
    sizes: Sequence[int],
    slot: int,
    num_slots: int,
    rng: random.Random | None,
    block_bytes: int,
) -> list[Piece]:
    blocks: list[tuple[int, int, int]] = []  # (file, start, end)
    for file, size in enumerate(sizes):
        n = -(-size // block_bytes)  # ceil; an empty file has no blocks
        blocks.extend((file, size * b // n, size * (b + 1) // n) for b in range(n))
    if rng is not None:
        rng.shuffle(blocks)
    total = sum(sizes)
    lo, hi = total * slot // num_slots, total * (slot + 1) // num_slots
    pieces: list[Piece] = []
    at = 0  # where the current block starts in the laid-out sequence
    for file, start, end in blocks:
        length = end - start
        a, b = max(at, lo), min(at + length, hi)
        if a < b:
            pieces.append(Piece(file, start + a - at, start + b - at))
        at += length
        if at >= hi:
            break
    return pieces


def _whole_files(
    sizes: Sequence[int], slot: int, num_slots: int, rng: random.Random | None
) -> list[Piece]:
    order = list(range(len(sizes)))
    if rng is not None:
        rng.shuffle(order)
    if len(order) < num_slots:
        # Stride: line i of the k-th file of the order goes to slot (i + k) % S, so short files
        # do not always land on slot 0.
        return [
            Piece(file, 0, TO_END, num_slots, (slot - k) % num_slots)
            for k, file in enumerate(order)
        ]
    # Greedy list scheduling in shuffled order: each file to the least-loaded slot (ties: the
    # lowest slot), so every slot gets at least one file and loads differ by at most one file.
    loads = [(0, s) for s in range(num_slots)]
    mine: list[Piece] = []
    for file in order:
        load, owner = heapq.heappop(loads)
        if owner == slot:
            mine.append(Piece(file, 0, TO_END))
        heapq.heappush(loads, (load + max(sizes[file], 1), owner))
    return mine
