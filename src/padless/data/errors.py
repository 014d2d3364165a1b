"""Errors for bad input and the skip-and-count policy.

Every malformed record either raises an error naming where it is (``file:line: reason``, or the
example id and audio file) or, under ``on_error="skip"``, is skipped and counted by reason. The
counts are reported by whoever owns the reader; nothing is dropped silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Literal, get_args

#: What a reader does with a malformed record: raise, or skip it and count it by reason.
OnError = Literal["raise", "skip"]
ON_ERRORS: tuple[OnError, ...] = get_args(OnError)


def check_on_error(value: str) -> None:
    """ValueError unless ``value`` is one of `ON_ERRORS` (the command line checks the same
    choice through the `OnError` type)."""
    if value not in ON_ERRORS:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERRORS)}; got {value!r}")


class PadlessInputError(ValueError):
    """Base class for bad-input errors raised by padless; ``reason`` is the short cause."""

    def __init__(self, message: str, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


class ManifestError(PadlessInputError):
    """A manifest line that cannot become an `Example`."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        self.path = path
        self.line = line  # 1-based
        super().__init__(f"{path}:{line}: {reason}", reason)


class AudioError(PadlessInputError):
    """Audio that cannot be read or decoded. ``kind`` is the short category skips are
    counted under where ``reason`` carries numbers (default: the reason itself)."""

    def __init__(self, example_id: str, source: str, reason: str, kind: str | None = None) -> None:
        self.example_id = example_id
        self.source = source
        self.kind = kind or reason
        super().__init__(f"example {example_id!r} ({source}): {reason}", reason)


class InputPathError(PadlessInputError):
    """A path that is not usable input as a whole: a folder that is not a shard set, a file of
    the wrong kind. The message starts with the path."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(f"{path}: {reason}", reason)


class ShardError(InputPathError):
    """A shard file that disagrees with its folder's ``shards.json`` (truncated, extended or
    replaced after writing). Always raised: the shard as a whole is suspect, not one record."""


class NoExamplesError(PadlessInputError):
    """Input that leaves nothing to do: no examples at all ("no examples in X"), or none that
    survive the checks and filters. An error, so a run never ends "successfully" with nothing
    read, written or trained on."""

    def __init__(self, message: str, skipped: SkipCounter | None = None) -> None:
        self.skipped = skipped  # what was skipped on the way, if anything
        super().__init__(message, "no examples")

    @classmethod
    def empty(cls, sources: str | Sequence[str], detail: str = "") -> NoExamplesError:
        """ "no examples in a.jsonl, b.jsonl", with ``detail`` in parentheses if given."""
        names = sources if isinstance(sources, str) else ", ".join(str(s) for s in sources)
        return cls(f"no examples in {names}" + (f" ({detail})" if detail else ""))


class SkipCounter:
    """Counts records skipped under ``on_error="skip"``, by reason, and remembers the first few."""

    def __init__(self, keep_examples: int = 5) -> None:
        self.by_reason: Counter[str] = Counter()
        self.examples: list[str] = []  # first few full messages, for the report
        self._keep = keep_examples

    def add(self, error: PadlessInputError, reason_key: str | None = None) -> None:
        key = reason_key or error.reason
        self.by_reason[key] += 1
        if len(self.examples) < self._keep:
            self.examples.append(str(error))

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())

    def merge(self, other: SkipCounter) -> None:
        self.by_reason.update(other.by_reason)
        room = self._keep - len(self.examples)
        self.examples.extend(other.examples[: max(room, 0)])

    def report(self) -> str:
        if not self.total:
            return "skipped 0 malformed records"
        parts = ", ".join(f"{n} {reason}" for reason, n in self.by_reason.most_common())
        return f"skipped {self.total} malformed records ({parts})"
