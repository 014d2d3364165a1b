"""The resumable Example stream: what the sampler reads, one rank (and worker) at a time.

Usage::

    stream = ExampleStream(["train.jsonl", "shards/"], rank=r, world_size=w, seed=0)
    it = stream.open(epoch=3)
    for example in it:           # metadata only; audio is read later by load_audio
        ...
        state = it.position      # JSON-serialisable: right after the last example yielded
    chunk = it.take(1000)        # or the next examples as a list (less per-example overhead)
    ...
    it = stream.open(epoch=3, position=state)   # continues with the next example

Sources are NeMo JSON-lines manifests (``.jsonl``/``.json``), lhotse cut manifests
(``.jsonl``/``.jsonl.gz``; the format is sniffed from the first line), shard folders written by
``padless shard`` (or their ``shards.json``), or single shard indexes (``*.index.jsonl``); any
of them may be an fsspec URL.

Splitting: ``padless.data.split`` assigns each slot (rank x dataloader worker) its byte ranges
of the files for the epoch, shuffled from (seed, epoch); the slots of one epoch together yield
every example exactly once.

Resuming: a `StreamPosition` is (epoch, piece, byte offset, line). ``open(epoch, position)``
recomputes the epoch's pieces (no file reads), seeks to the byte offset and continues: the cost
does not depend on how deep into the epoch the position is. Only compressed (``.gz``) sources
must decompress up to the offset (no JSON parsing). Positions are valid for the same sources,
split settings and ``block_bytes``.

Bad lines: ``on_error="raise"`` raises ``ManifestError`` (``file:line: reason``);
``on_error="skip"`` skips the line and counts it by reason in ``StreamIterator.skipped`` and in
the stream-wide ``ExampleStream.skipped``; an iterator logs its count when it finishes. Blank
lines are not records and are passed over.

Speed: per line, the loop does one ``orjson.loads``, one parser call, an offset addition and a
yield (the parsers are in ``nemo``, ``lhotse_cuts`` and ``shards``); positions are built only
when asked. Measured throughput: ``bench/bench_metadata.py`` and its record in bench/results/.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import IO, Any, Literal, NamedTuple

import orjson

from padless.data import fs
from padless.data.errors import (
    InputPathError,
    ManifestError,
    OnError,
    ShardError,
    SkipCounter,
    check_on_error,
)
from padless.data.example import Example
from padless.data.lhotse_cuts import lhotse_parser, looks_like_lhotse
from padless.data.nemo import FieldChecks, FieldError, Parser, nemo_parser
from padless.data.shards import ShardSet, index_parser
from padless.data.split import Piece, plan_slot, slot_of

log = logging.getLogger("padless.data")

SourceKind = Literal["nemo", "lhotse", "index"]


@dataclass(frozen=True)
class StreamConfig:
    """Which part of the data a stream reads, and how strictly."""

    #: This process's data-parallel rank and the number of ranks.
    rank: int = 0
    world_size: int = 1
    #: This dataloader worker and the number of workers per rank (1 when the sampler reads in
    #: the main process, as padless's bucketing sampler does).
    worker: int = 0
    num_workers: int = 1
    #: Seed of the per-epoch shuffle of file blocks; every rank must use the same one.
    seed: int = 0
    #: Shuffle the block order each epoch; False reads files in the order given.
    shuffle: bool = True
    #: Malformed lines: "raise" a ManifestError, or "skip" them and count by reason.
    on_error: OnError = "raise"
    #: Training examples need a target text; False for inference or metadata-only manifests.
    require_text: bool = True
    #: Accepted language codes; None accepts any valid code.
    languages: frozenset[str] | None = None
    #: Block size of the split (bytes of manifest or index). Smaller blocks mix more across an
    #: epoch; each block costs one seek (and one ranged request on object storage).
    block_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        if self.languages is not None and not isinstance(self.languages, frozenset):
            object.__setattr__(self, "languages", frozenset(self.languages))
        check_on_error(self.on_error)
        slot_of(self.rank, self.world_size, self.worker, self.num_workers)  # validates


class StreamPosition(NamedTuple):
    """Right after the last example yielded: epoch, index into the slot's pieces, byte offset of
    the next unread line in that piece's file, lines of the file consumed (sequential pieces).
    JSON-serialisable as a list; ``StreamPosition(*json_list)`` restores it."""

    epoch: int
    piece: int
    offset: int
    line: int


@dataclass(frozen=True)
class SourceFile:
    """One file of examples, as the stream reads it."""

    path: str
    kind: SourceKind
    size: int  # bytes (compressed size for .gz)
    seekable: bool
    tar: str | None = None  # the shard tar an index points into
    #: For a shard index listed in a ``shards.json``: that list's path and the number of
    #: records it says the index holds (``size`` is then the listed byte size, checked on open).
    shard_list: str | None = None
    examples: int | None = None


def resolve_sources(paths: str | Sequence[str]) -> list[SourceFile]:
    """The files behind manifest paths, shard folders and shard lists, in the order given."""
    files: list[SourceFile] = []
    for path in [paths] if isinstance(paths, str) else paths:
        path = str(path)
        if ShardSet.is_shard_set(path):
            shard_set = ShardSet.load(path)
            list_path = shard_set.list_path
            files.extend(
                SourceFile(
                    shard_set.index_path(s),
                    "index",
                    s.index_bytes,
                    True,
                    shard_set.tar_path(s),
                    list_path,
                    s.examples,
                )
                for s in shard_set.shards
            )
        elif fs.isdir(path):
            raise InputPathError(path, "a folder without shards.json (not a shard set)")
        elif path.endswith(".index.jsonl"):
            tar = path[: -len(".index.jsonl")] + ".tar"
            files.append(SourceFile(path, "index", fs.file_size(path), True, tar))
        else:
            kind: SourceKind = "lhotse" if _sniff_lhotse(path) else "nemo"
            files.append(SourceFile(path, kind, fs.file_size(path), not path.endswith(".gz")))
    return files


def _sniff_lhotse(path: str) -> bool:
    with fs.open_binary(path) as f:
        for line in f:
            if line.strip():
                try:
                    first = orjson.loads(line)
                except orjson.JSONDecodeError:
                    return False  # reported with its line number when read
                return isinstance(first, dict) and looks_like_lhotse(first)
    return False


class ExampleStream:
    """Examples of one slot (rank, worker) of a set of sources, epoch by epoch; resumable.

    ``ExampleStream(sources, config)`` or ``ExampleStream(sources, rank=.., world_size=..,
    ...)`` with `StreamConfig` field names as keywords.
    """

    def __init__(
        self, sources: str | Sequence[str], config: StreamConfig | None = None, /, **fields: Any
    ) -> None:
        self.config = replace(config or StreamConfig(), **fields)
        self.files = resolve_sources(sources)
        self.slot, self.num_slots = slot_of(
            self.config.rank, self.config.world_size, self.config.worker, self.config.num_workers
        )
        # Shared by all iterators, so the language cache is filled once.
        self.checks = FieldChecks(self.config.require_text, self.config.languages)
        self.skipped = SkipCounter()  # every skip of every iterator of this stream

    def pieces(self, epoch: int) -> list[Piece]:
        """What this slot reads in ``epoch``, in order (computed, not read)."""
        c = self.config
        return plan_slot(
            [f.size for f in self.files],
            [f.seekable for f in self.files],
            slot=self.slot,
            num_slots=self.num_slots,
            epoch=epoch,
            seed=c.seed,
            shuffle=c.shuffle,
            block_bytes=c.block_bytes,
        )

    def open(
        self, epoch: int = 0, position: StreamPosition | Sequence[int] | None = None
    ) -> StreamIterator:
        """Iterate this slot's examples of ``epoch``, from the start or right after
        ``position`` (a value of ``StreamIterator.position``, possibly via JSON)."""
        pieces = self.pieces(epoch)
        if position is None:
            start = StreamPosition(epoch, 0, pieces[0].start if pieces else 0, 0)
        else:
            start = StreamPosition(*position)
            if start.epoch != epoch:
                raise ValueError(
                    f"position {tuple(start)} is from epoch {start.epoch}, not {epoch}"
                )
            if not 0 <= start.piece <= len(pieces) or start.offset < 0 or start.line < 0:
                raise ValueError(
                    f"position {tuple(start)} does not fit this stream's {len(pieces)} pieces "
                    "(different sources or split settings?)"
                )
        return StreamIterator(self, pieces, start)

    def __iter__(self) -> Iterator[Example]:
        """All examples of epoch 0 (convenience for one-pass reading)."""
        return iter(self.open(0))

    def parser(self, file: int) -> Parser:
        src = self.files[file]
        if src.kind == "nemo":
            return nemo_parser(src.path, self.checks)
        if src.kind == "lhotse":
            return lhotse_parser(src.path, self.checks)
        assert src.tar is not None
        return index_parser(src.tar, self.checks)


@dataclass
class _Cursor:
    """Mutable reading state; the iterator's position is a snapshot of it."""

    piece: int
    offset: int
    line: int
    handle: IO[bytes] | None = None
    handle_file: int = -1
    newline_cache: dict[int, tuple[int, int]] = field(default_factory=dict)


class StreamIterator:
    """Examples of one epoch for one slot. Iterate it (``for`` loops run the underlying
    generator directly) or call ``next``; ``position`` and ``skipped`` describe its progress."""

    def __init__(self, stream: ExampleStream, pieces: list[Piece], start: StreamPosition) -> None:
        self.stream = stream
        self.epoch = start.epoch
        self.pieces = pieces
        self.skipped = SkipCounter()
        self._cur = _Cursor(start.piece, start.offset, start.line)
        self._gen = self._run()

    @property
    def position(self) -> StreamPosition:
        """Right after the last example yielded (the start position before the first)."""
        c = self._cur
        return StreamPosition(self.epoch, c.piece, c.offset, c.line)

    def __iter__(self) -> Iterator[Example]:
        return self._gen

    def __next__(self) -> Example:
        return next(self._gen)

    def take(self, n: int) -> list[Example]:
        """The next ``n`` examples (fewer at the end of the epoch), fetched in C by
        ``itertools.islice``; ``position`` is then right after the last of them."""
        return list(islice(self._gen, n))

    def close(self) -> None:
        self._gen.close()

    # --- reading ---------------------------------------------------------------------------

    def _run(self) -> Generator[Example, None, None]:
        cur = self._cur
        try:
            while cur.piece < len(self.pieces):
                piece = self.pieces[cur.piece]
                if piece.stride == 1 and self.stream.files[piece.file].seekable:
                    yield from self._byte_range(piece)
                else:
                    yield from self._sequential(piece)
                cur.piece += 1
                if cur.piece < len(self.pieces):
                    cur.offset, cur.line = self.pieces[cur.piece].start, 0
            if self.skipped.total:
                log.warning("%s (epoch %d)", self.skipped.report(), self.epoch)
        finally:
            if cur.handle is not None:
                cur.handle.close()
                cur.handle = None

    def _open(self, file: int) -> IO[bytes]:
        cur = self._cur
        if cur.handle_file != file or cur.handle is None:
            if cur.handle is not None:
                cur.handle.close()
            src = self.stream.files[file]
            cur.handle, cur.handle_file = fs.open_binary(src.path), file
            if src.shard_list is not None:
                # The split planned with the listed size: a longer index would lose its tail
                # silently, a shorter one its missing lines. Seeking to the end reads nothing.
                size = cur.handle.seek(0, 2)
                if size != src.size:
                    raise ShardError(
                        src.path,
                        f"index has {size} bytes, {src.shard_list} lists {src.size} "
                        "(truncated, extended or replaced after the shard set was written)",
                    )
        return cur.handle

    def _byte_range(self, piece: Piece) -> Iterator[Example]:
        """Lines starting in [cursor offset, piece.end) of a seekable file."""
        cur = self._cur
        f = self._open(piece.file)
        parse = self.stream.parser(piece.file)
        loads = orjson.loads
        pos, end = cur.offset, piece.end
        if pos > 0:  # skip the line that started before our range (no-op at a line start)
            f.seek(pos - 1)
            pos += len(f.readline()) - 1
        else:
            f.seek(0)
        cur.offset = pos
        src = self.stream.files[piece.file]
        # A slot that reads a listed index whole checks its record count against the list.
        whole = src.examples is not None and pos == 0 and end == src.size
        records = 0
        for records, line in enumerate(f, 1):
            if pos >= end:
                records -= 1
                break
            start = pos
            pos += len(line)
            try:
                example = parse(loads(line))
            except Exception as err:
                cur.offset = pos
                self._reject(err, line, piece.file, start, None, parse)
                continue
            cur.offset = pos
            yield example
        cur.offset = pos
        if whole and records != src.examples:
            raise ShardError(
                src.path, f"index has {records} records, {src.shard_list} lists {src.examples}"
            )

    def _sequential(self, piece: Piece) -> Iterator[Example]:
        """Every ``stride``-th line of a whole file from ``phase`` (compressed files)."""
        cur = self._cur
        f = self._open(piece.file)
        parse = self.stream.parser(piece.file)
        loads = orjson.loads
        stride, phase = piece.stride, piece.phase
        f.seek(cur.offset)  # gzip: decompresses forward to the offset, without parsing
        pos, lineno = cur.offset, cur.line
        for line in f:
            start = pos
            pos += len(line)
            lineno += 1
            if stride > 1 and (lineno - 1) % stride != phase:
                continue
            try:
                example = parse(loads(line))
            except Exception as err:
                cur.offset, cur.line = pos, lineno
                self._reject(err, line, piece.file, start, lineno, parse)
                continue
            cur.offset, cur.line = pos, lineno
            yield example
        cur.offset, cur.line = pos, lineno

    # --- errors ----------------------------------------------------------------------------

    def _reject(
        self,
        err: Exception,
        line: bytes,
        file: int,
        offset: int,
        lineno: int | None,
        parse: Parser,
    ) -> None:
        """Raise ManifestError for a bad line, or count it under on_error="skip"."""
        if isinstance(err, orjson.JSONDecodeError) and not line.strip():
            return  # a blank line is not a record
        reason, key = _diagnose(err, line, parse)
        path = self.stream.files[file].path
        if lineno is None:
            lineno = self._line_number(file, offset)
        error = ManifestError(path, lineno, reason)
        if self.stream.config.on_error == "raise":
            raise error from err
        self.skipped.add(error, key)
        self.stream.skipped.add(error, key)

    def _line_number(self, file: int, offset: int) -> int:
        """1-based line number of the line starting at byte ``offset``: counts newlines before
        it (only on the error path; incremental over a file's errors)."""
        cache = self._cur.newline_cache
        known_offset, known_lines = cache.get(file, (0, 0))
        if offset < known_offset:
            known_offset, known_lines = 0, 0
        with fs.open_binary(self.stream.files[file].path) as f:
            f.seek(known_offset)
            remaining = offset - known_offset
            while remaining > 0:
                chunk = f.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                known_lines += chunk.count(b"\n")
                remaining -= len(chunk)
        cache[file] = (offset, known_lines)
        return known_lines + 1


def _diagnose(err: Exception, line: bytes, parse: Parser) -> tuple[str, str]:
    """(reason, reason key) for a line the fast path rejected."""
    if isinstance(err, FieldError):
        return err.reason, err.key
    if isinstance(err, orjson.JSONDecodeError):
        bad_json = _bad_json(line)
        # Python's json writes NaN/Infinity, which strict JSON (orjson) rejects: report what
        # the field would have said ("NaN duration") when that is the only problem.
        try:
            d = json.loads(line)
        except ValueError:
            return bad_json, "bad JSON"
        if isinstance(d, dict):
            try:
                parse(d)
            except FieldError as field_err:
                return field_err.reason, field_err.key
        return bad_json, "bad JSON"
    value = orjson.loads(line)
    if not isinstance(value, dict):
        return f"expected a JSON object, got {type(value).__name__}", "not an object"
    raise err  # a bug in a parser, not bad input


def _bad_json(line: bytes) -> str:
    """ "bad JSON at column N: what", with N counted within the line (without its newline)."""
    try:
        orjson.loads(line.rstrip(b"\r\n"))
    except orjson.JSONDecodeError as err:
        return f"bad JSON at column {err.colno}: {err.msg}"
    return "bad JSON"


def read_manifest(
    paths: str | Sequence[str],
    *,
    require_text: bool = True,
    languages: Sequence[str] | frozenset[str] | None = None,
    on_error: OnError = "raise",
) -> StreamIterator:
    """All examples of the given manifests / shard folders in file order (one pass, no split).

    The result iterates Examples; its ``skipped`` counts lines skipped under ``on_error="skip"``.
    """
    config = StreamConfig(
        shuffle=False,
        on_error=on_error,
        require_text=require_text,
        languages=None if languages is None else frozenset(languages),
    )
    return ExampleStream(paths, config).open(0)
