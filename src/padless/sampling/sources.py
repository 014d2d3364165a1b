"""Where the sampler's examples come from: one resumable source per rank.

The sampler reads through a `SourceFactory`: called as ``factory(rank=r, world_size=w)`` it
returns rank ``r``'s `ExampleSource`, whose ``open(epoch, position)`` iterates that rank's part
of the data and exposes ``position`` (right after the last example yielded; reopening there
continues exactly, in time independent of the position). `padless.data.stream.ExampleStream`
is such a source; `manifest_sources` builds the factory for manifest paths. `ExampleList` is an
in-memory source (tests, preloaded data, other sequence-to-sequence data).

A sampler on rank ``r`` also opens the *other* ranks' sources when it balances batch counts
across ranks (see `padless.sampling.balance`); every rank's factory must therefore describe the
same split.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from padless.data.errors import OnError
from padless.data.example import Example
from padless.data.stream import ExampleStream


class SourceIterator(Protocol):
    """Iterates one epoch of a rank's examples; ``position`` is JSON-serialisable. An iterator
    may also offer ``take(n) -> list`` (the next ``n`` items at once), which readers prefer."""

    @property
    def position(self) -> Any: ...

    def __iter__(self) -> Iterator[Example]: ...

    def __next__(self) -> Example: ...


class ExampleSource(Protocol):
    def open(self, epoch: int = 0, position: Any = None) -> SourceIterator: ...


class SourceFactory(Protocol):
    def __call__(self, *, rank: int, world_size: int) -> ExampleSource: ...


class ExampleList:
    """An in-memory source: rank ``r`` of ``w`` reads items ``r, r + w, r + 2w, ...`` of the
    (optionally per-epoch shuffled) list. Positions are item counts, so reopening is O(1).

    Used as a factory too: ``ExampleList(examples)(rank=r, world_size=w)`` is rank ``r``'s part.
    """

    def __init__(
        self,
        examples: Sequence[Example],
        *,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.examples = examples
        self.rank, self.world_size = rank, world_size
        self.shuffle, self.seed = shuffle, seed

    def __call__(self, *, rank: int, world_size: int) -> ExampleList:
        return ExampleList(
            self.examples, rank=rank, world_size=world_size, shuffle=self.shuffle, seed=self.seed
        )

    def __len__(self) -> int:
        n = len(self.examples)
        return max(0, (n - self.rank + self.world_size - 1) // self.world_size)

    def open(self, epoch: int = 0, position: Any = None) -> _ListIterator:
        order: Sequence[int] | None = None
        if self.shuffle:
            order = (
                np.random.default_rng([self.seed, epoch]).permutation(len(self.examples)).tolist()
            )
        return _ListIterator(self, order, int(position or 0))


class _ListIterator:
    def __init__(self, source: ExampleList, order: Sequence[int] | None, start: int) -> None:
        self._source = source
        self._order = order
        self.position = start  # items of this rank consumed so far

    def __iter__(self) -> _ListIterator:
        return self

    def __next__(self) -> Example:
        s = self._source
        i = s.rank + self.position * s.world_size
        if i >= len(s.examples):
            raise StopIteration
        self.position += 1
        return s.examples[i if self._order is None else self._order[i]]

    def take(self, n: int) -> list[Example]:
        """The next ``n`` items at once (a slice: no Python call per item)."""
        s = self._source
        w = s.world_size
        lo = s.rank + self.position * w
        hi = min(len(s.examples), lo + n * w)
        if lo >= hi:
            return []
        self.position += -(-(hi - lo) // w)
        if self._order is None:
            return list(s.examples[lo:hi:w])
        return [s.examples[j] for j in self._order[lo:hi:w]]


def manifest_sources(
    paths: str | Sequence[str],
    *,
    seed: int = 0,
    shuffle: bool = True,
    on_error: OnError = "raise",
    require_text: bool = False,
    **stream_options: Any,
) -> SourceFactory:
    """A factory of `padless.data.stream.ExampleStream`s over ``paths``, one per rank.

    ``require_text=False`` because the sampler reads metadata only; the dataset (which does
    need text) checks it when it builds the batch.
    """

    def factory(*, rank: int, world_size: int) -> ExampleSource:
        return ExampleStream(
            paths,
            rank=rank,
            world_size=world_size,
            seed=seed,
            shuffle=shuffle,
            on_error=on_error,
            require_text=require_text,
            **stream_options,
        )

    return factory
