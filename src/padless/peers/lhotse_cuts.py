"""padless `Example`s as lhotse cuts for the lhotse peer: the rows of metadata a cut needs, read
from Examples or from the RSS child's input file, and the cuts built from them."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from padless.data.example import Example, FileAudio, ShardAudio


class Row(NamedTuple):
    """The metadata a cut needs, from an Example or from the RSS child's input file."""

    id: str
    duration: float
    num_tokens: int | None
    source: str  # audio path, shard or ""
    start: float
    sampling_rate: int
    text: str | None
    language: str | None


def example_row(example: Example) -> Row:
    audio = example.audio
    if isinstance(audio, FileAudio):
        source, start = audio.path, audio.offset
    elif isinstance(audio, ShardAudio):
        source, start = audio.shard, 0.0
    else:
        source, start = "", 0.0
    return Row(
        example.id,
        example.duration,
        example.num_tokens,
        source,
        start,
        example.sampling_rate,
        example.text,
        example.target_lang,
    )


def make_cut(row: Row) -> Any:
    from lhotse import AudioSource, MonoCut, Recording, SupervisionSegment

    sr = row.sampling_rate
    rec_duration = row.start + row.duration
    recording = Recording(
        id=row.id,
        sources=[AudioSource(type="file", channels=[0], source=row.source)],
        sampling_rate=sr,
        num_samples=round(rec_duration * sr),
        duration=rec_duration,
    )
    supervision = SupervisionSegment(
        id=row.id,
        recording_id=row.id,
        start=0.0,
        duration=row.duration,
        channel=0,
        text=row.text,
        language=row.language,
    )
    return MonoCut(
        id=row.id,
        start=row.start,
        duration=row.duration,
        channel=0,
        recording=recording,
        supervisions=[supervision],
        custom={"num_tokens": row.num_tokens},
    )


class LazyCuts:
    """Re-iterable cut stream built on the fly (lhotse reads the head for bins, then restarts)."""

    def __init__(self, rows: Iterable[Row]) -> None:
        self.rows = rows

    def __iter__(self) -> Iterator[Any]:
        return map(make_cut, self.rows)


class ExampleRows:
    """Re-iterable `Row`s of a sequence of Examples, checking token counts when needed."""

    def __init__(self, examples: Sequence[Example], needs_tokens: bool) -> None:
        self.examples = examples
        self.needs_tokens = needs_tokens

    def __iter__(self) -> Iterator[Row]:
        for example in self.examples:
            if self.needs_tokens and example.num_tokens is None:
                raise ValueError(
                    f"example {example.id!r}: num_tokens is unknown; 2D bins and token filters "
                    "need token counts (a manifest with num_tokens, or a tokenizer)"
                )
            yield example_row(example)


class TsvRows:
    """Re-iterable `Row`s from the RSS child's input file (id, duration, num_tokens)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[Row]:
        with open(self.path, newline="") as f:
            for ex_id, dur, tok in csv.reader(f, delimiter="\t"):
                yield Row(ex_id, float(dur), int(tok) if tok else None, "", 0.0, 16_000, None, None)


class Concat:
    """Rows of several ranks, one after another (lhotse's round-robin mode reads them all)."""

    def __init__(self, parts: Sequence[Iterable[Row]]) -> None:
        self.parts = parts

    def __iter__(self) -> Iterator[Row]:
        for part in self.parts:
            yield from part
