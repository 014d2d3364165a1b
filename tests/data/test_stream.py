"""ExampleStream: exact resume from any position, by byte offset (no re-parsing)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pytest

from padless.data.errors import ManifestError
from padless.data.shards import ShardWriterConfig, write_shards
from padless.data.stream import ExampleStream, StreamConfig, StreamPosition, read_manifest


def _rows(prefix: str, n: int) -> list[bytes]:
    return [
        orjson.dumps(
            {"id": f"{prefix}{i}", "duration": 0.5 + i % 7, "text": "t" * (i % 13), "lang": "en"}
        )
        for i in range(n)
    ]


def _write(path: Path, rows: list[bytes]) -> str:
    data = b"".join(r + b"\n" for r in rows)
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return str(path)


@pytest.fixture
def sources(tmp_path: Path) -> list[str]:
    return [
        _write(tmp_path / "a.jsonl", _rows("a", 120)),
        _write(tmp_path / "b.jsonl", _rows("b", 45)),
        _write(tmp_path / "c.jsonl", _rows("c", 3)),
    ]


def _walk(stream: ExampleStream, epoch: int) -> tuple[list[str], list[StreamPosition]]:
    it = stream.open(epoch)
    ids, positions = [], []
    for example in it:
        ids.append(example.id)
        positions.append(it.position)
    return ids, positions


@pytest.mark.parametrize(
    "config",
    [
        StreamConfig(world_size=2, rank=1, block_bytes=300, seed=5),  # byte ranges
        StreamConfig(world_size=1, block_bytes=1 << 20, shuffle=False),  # whole files in order
    ],
    ids=["blocks", "files"],
)
def test_resume_at_every_position_yields_the_rest(sources: list[str], config: StreamConfig) -> None:
    stream = ExampleStream(sources, config)
    ids, positions = _walk(stream, epoch=2)
    assert len(ids) > 50
    for k, position in enumerate(positions):
        restored = StreamPosition(*json.loads(json.dumps(position)))  # survives JSON
        assert [e.id for e in stream.open(2, restored)] == ids[k + 1 :]


@pytest.mark.parametrize("world_size", [1, 3])
def test_resume_in_compressed_and_strided_files(tmp_path: Path, world_size: int) -> None:
    sources = [
        _write(tmp_path / "a.jsonl.gz", _rows("a", 40)),
        _write(tmp_path / "b.jsonl", _rows("b", 10)),
    ]
    stream = ExampleStream(sources, rank=world_size - 1, world_size=world_size, seed=1)
    assert {p.stride for p in stream.pieces(0)} == {world_size}
    ids, positions = _walk(stream, epoch=0)
    for k in (0, len(ids) // 2, len(ids) - 1):
        assert [e.id for e in stream.open(0, positions[k])] == ids[k + 1 :]


def test_resume_seeks_without_parsing_what_came_before(tmp_path: Path) -> None:
    """The first half of the file is garbage; a raising stream resumed past it never sees it,
    which shows the resume seeks by offset instead of re-reading the epoch."""
    rows = [b"{not json"] * 500 + _rows("ok", 20)
    path = _write(tmp_path / "m.jsonl", rows)
    tolerant = ExampleStream([path], shuffle=False, on_error="skip")
    it = tolerant.open(0)
    first = next(it)
    assert first.id == "ok0" and it.skipped.total == 500
    strict = ExampleStream([path], shuffle=False, on_error="raise")
    assert [e.id for e in strict.open(0, it.position)] == [f"ok{i}" for i in range(1, 20)]
    with pytest.raises(ManifestError, match=r"m\.jsonl:1: bad JSON"):
        next(iter(strict.open(0)))


def test_resume_from_shard_indexes(tmp_path: Path, make_audio) -> None:
    from padless.data.example import Example, FileAudio

    make_audio(tmp_path / "a.wav", 0.3)
    examples = [
        Example(f"e{i}", 0.3, FileAudio(str(tmp_path / "a.wav")), "x", "en", "en")
        for i in range(30)
    ]
    write_shards(examples, tmp_path / "shards", ShardWriterConfig(shard_size=7))
    stream = ExampleStream(
        [str(tmp_path / "shards")], world_size=2, rank=0, block_bytes=500, seed=2
    )
    ids, positions = _walk(stream, epoch=1)
    other = [
        e.id
        for e in ExampleStream(
            [str(tmp_path / "shards")], world_size=2, rank=1, block_bytes=500, seed=2
        ).open(1)
    ]
    assert sorted(ids + other) == sorted(e.id for e in examples)
    for k in range(0, len(ids), 4):
        assert [e.id for e in stream.open(1, positions[k])] == ids[k + 1 :]


def test_position_before_first_and_after_last(sources: list[str]) -> None:
    stream = ExampleStream(sources, seed=3, block_bytes=256)
    it = stream.open(4)
    start = it.position
    ids = [e.id for e in it]
    assert [e.id for e in stream.open(4, start)] == ids  # the start position replays everything
    assert list(stream.open(4, it.position)) == []  # the end position yields nothing
    assert it.position.piece == len(stream.pieces(4))


def test_positions_from_another_epoch_or_layout_are_refused(sources: list[str]) -> None:
    stream = ExampleStream(sources, block_bytes=256)
    it = stream.open(1)
    next(it)
    with pytest.raises(ValueError, match="is from epoch 1, not 2"):
        stream.open(2, it.position)
    with pytest.raises(ValueError, match="does not fit this stream's"):
        stream.open(1, StreamPosition(1, 10_000, 0, 0))


def test_keyword_overrides_and_languages(sources: list[str], tmp_path: Path) -> None:
    stream = ExampleStream(sources, StreamConfig(seed=9), world_size=2, languages=["en"])
    assert (stream.config.seed, stream.config.world_size, stream.config.languages) == (
        9,
        2,
        frozenset({"en"}),
    )
    mixed = _write(
        tmp_path / "mixed.jsonl",
        [orjson.dumps({"id": "d", "duration": 1.0, "text": "x", "lang": "de"}), *_rows("e", 2)],
    )
    it = read_manifest(mixed, languages=["en"], on_error="skip")
    assert [e.id for e in it] == ["e0", "e1"]
    assert dict(it.skipped.by_reason) == {"unknown language": 1}
    with pytest.raises(TypeError):
        ExampleStream(sources, bogus=1)
    with pytest.raises(ValueError, match="on_error must be"):
        StreamConfig(on_error="ignore")  # type: ignore[arg-type]


def test_stream_wide_skip_count_spans_iterators(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "m.jsonl", [*_rows("a", 3), b'{"id": "z", "duration": 0, "text": "x"}']
    )
    stream = ExampleStream([path], on_error="skip")
    for epoch in range(3):
        it = stream.open(epoch)
        assert len(list(it)) == 3 and it.skipped.total == 1
    assert stream.skipped.by_reason == {"zero duration": 3}


def test_take_returns_chunks_and_moves_the_position(sources: list[str]) -> None:
    stream = ExampleStream(sources, block_bytes=300, seed=1)
    ids = [e.id for e in stream.open(0)]
    it = stream.open(0)
    first = it.take(50)
    assert [e.id for e in first] == ids[:50]
    assert [e.id for e in stream.open(0, it.position)] == ids[50:]
    rest = it.take(10_000)
    assert [e.id for e in rest] == ids[50:] and it.take(5) == []


def test_a_folder_that_is_not_a_shard_set_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"a folder without shards\.json \(not a shard set\)"):
        ExampleStream([str(tmp_path)])
