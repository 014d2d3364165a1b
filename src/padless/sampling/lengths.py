"""Length functions: the two sequence lengths the sampler buckets on.

The sampler knows nothing about speech. It asks a `LengthFn` for two numbers per item, an
*input length* (for speech: duration in seconds) and an *output length* (for AED models: decoder
tokens, i.e. prompt + text + EOS), always for a whole chunk of items at once so that the work
is a couple of C loops rather than a Python loop per item. Any sequence-to-sequence data can be
sampled by passing another `LengthFn`.

Tokens per second (TPS) is ``output / input``; the TPS filter uses it (see `filters`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from padless.data.errors import PadlessInputError
from padless.data.example import Example


class TokenCounter(Protocol):
    """Counts decoder tokens for examples without ``num_tokens`` (e.g. `CanaryTokenizer`)."""

    def num_tokens_batch(self, examples: Sequence[Example]) -> list[int]: ...


class LengthFn(Protocol):
    """Input and output lengths of a chunk of items: ``(float64 (N,), int64 (N,))``."""

    def __call__(self, items: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]: ...


class MissingTokensError(PadlessInputError):
    """An example has no ``num_tokens`` and no tokenizer was given to count them."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "missing num_tokens")


class ExampleLengths:
    """Duration and ``num_tokens`` of `Example`s.

    ``num_tokens`` comes from the example (a manifest may carry it, or a tokenizer cached it);
    examples without it are counted by ``tokenizer`` in one batched call per chunk (which caches
    the count in the example), or raise `MissingTokensError` naming the example when there is
    no tokenizer. Cost: two ``np.fromiter`` passes over the chunk (~70 ns per example).
    """

    def __init__(self, tokenizer: TokenCounter | None = None) -> None:
        self.tokenizer = tokenizer

    def __call__(self, items: Sequence[Example]) -> tuple[np.ndarray, np.ndarray]:
        n = len(items)
        durations = np.fromiter((e.duration for e in items), dtype=np.float64, count=n)
        try:
            tokens = np.fromiter((e.num_tokens for e in items), dtype=np.int64, count=n)
        except TypeError:  # some num_tokens are None
            tokens = self._count_missing(items)
        return durations, tokens

    def _count_missing(self, items: Sequence[Example]) -> np.ndarray:
        if self.tokenizer is None:
            first = next(e for e in items if e.num_tokens is None)
            raise MissingTokensError(
                f"example {first.id!r} has no num_tokens: add num_tokens to the manifest "
                "or give a tokenizer (--tokenizer DIR) to count them"
            )
        return np.asarray(self.tokenizer.num_tokens_batch(items), dtype=np.int64)


def tokens_per_second(durations: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Output tokens per input second, elementwise; ``inf`` for zero durations."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(durations > 0, tokens / np.maximum(durations, 1e-300), np.inf)
