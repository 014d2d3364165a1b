"""Indexed shards: equal Examples across NeMo / lhotse / shards, bit-identical PCM, byte
offsets that point at the FLAC members, deterministic output, the `padless shard` command."""

from __future__ import annotations

import dataclasses
import io
import tarfile
from pathlib import Path

import fsspec
import numpy as np
import orjson
import pytest
import soundfile as sf
from typer.testing import CliRunner

from padless.cli import app
from padless.data.audio import load_audio, load_pcm
from padless.data.errors import AudioError, NoExamplesError, PadlessInputError
from padless.data.example import ArrayAudio, Example, FileAudio, ShardAudio
from padless.data.shards import ShardSet, ShardWriterConfig, shard_key, write_shards
from padless.data.stream import ExampleStream, read_manifest


def _without_audio(example: Example) -> Example:
    return dataclasses.replace(example, audio=None)


def test_nemo_lhotse_and_shards_give_equal_examples(
    corpus: dict, to_lhotse, tmp_path: Path
) -> None:
    nemo = list(read_manifest(str(corpus["manifest"])))
    to_lhotse(corpus["rows"], corpus["root"]).to_file(tmp_path / "cuts.jsonl.gz")
    lhotse = list(read_manifest(str(tmp_path / "cuts.jsonl.gz")))
    result = write_shards(nemo, tmp_path / "shards", ShardWriterConfig(shard_size=3))
    sharded = list(read_manifest(str(tmp_path / "shards")))

    assert [s.examples for s in result.shards.shards] == [3, 3, 1]
    assert all(isinstance(e.audio, ShardAudio) for e in sharded)
    assert lhotse == nemo
    assert [_without_audio(e) for e in sharded] == [_without_audio(e) for e in nemo]
    for original, stored in zip(nemo, sharded, strict=True):
        pcm, rate = load_pcm(original)
        stored_pcm, stored_rate = load_pcm(stored)
        assert stored_rate == rate
        assert stored_pcm.dtype == np.int16
        np.testing.assert_array_equal(stored_pcm, pcm)  # bit-identical
        np.testing.assert_array_equal(load_audio(stored), load_audio(original))


def test_offsets_point_at_flac_members(corpus: dict, tmp_path: Path) -> None:
    write_shards(read_manifest(str(corpus["manifest"])), tmp_path, ShardWriterConfig(shard_size=10))
    shard_set = ShardSet.load(str(tmp_path))
    (info,) = shard_set.shards
    index = [orjson.loads(line) for line in (tmp_path / info.index).read_bytes().splitlines()]
    tar_bytes = (tmp_path / info.tar).read_bytes()
    assert info.tar_bytes == len(tar_bytes) and info.examples == len(index) == 7
    with tarfile.open(tmp_path / info.tar) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [
            f"{r['key']}.{ext}" for r in index for ext in ("flac", "json")
        ]
        for row, flac, meta in zip(index, members[::2], members[1::2], strict=True):
            assert (flac.offset_data, flac.size) == (row["offset"], row["size"])
            data = tar_bytes[row["offset"] : row["offset"] + row["size"]]
            assert sf.info(io.BytesIO(data)).format == "FLAC"
            member_meta = orjson.loads(tar.extractfile(meta).read())  # type: ignore[union-attr]
            assert member_meta == {
                k: v for k, v in row.items() if k not in ("key", "offset", "size")
            }
    assert shard_set.examples == 7
    assert shard_set.duration == pytest.approx(sum(r["duration"] for r in corpus["rows"]), abs=1e-3)


def test_output_is_deterministic_across_processes(corpus: dict, tmp_path: Path) -> None:
    examples = list(read_manifest(str(corpus["manifest"])))
    write_shards(examples, tmp_path / "one", ShardWriterConfig(shard_size=2, jobs=1))
    write_shards(examples, tmp_path / "two", ShardWriterConfig(shard_size=2, jobs=2))
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "two").iterdir())
    assert len(names) == 9  # 4 tars, 4 indexes, shards.json
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_high_resolution_and_multichannel_sources_are_kept(tmp_path: Path, make_audio) -> None:
    make_audio(tmp_path / "hi.wav", 0.5, rate=44_100, channels=2, subtype="PCM_24")
    src = Example("hi", 0.5, FileAudio(str(tmp_path / "hi.wav"), 0.0, 0.5), "x", "en", "en")
    write_shards([src], tmp_path / "s")
    (stored,) = read_manifest(str(tmp_path / "s"))
    assert stored.sampling_rate == 44_100
    original, _ = load_pcm(src, "int32")
    kept, rate = load_pcm(stored, "int32")
    assert (rate, kept.shape) == (44_100, (22_050, 2))
    np.testing.assert_array_equal(kept, original)  # 24-bit exact
    assert load_audio(stored).shape == (8000,)  # mono, 16 kHz


def test_in_memory_audio_is_quantized_to_24_bits(tmp_path: Path) -> None:
    samples = np.sin(np.linspace(0, 200, 16_000, dtype=np.float32)) * 0.5
    example = Example("arr", 1.0, ArrayAudio(samples, 16_000), "x", "en", "en")
    write_shards([example], tmp_path)
    (stored,) = read_manifest(str(tmp_path))
    assert np.max(np.abs(load_audio(stored) - samples)) < 2**-22


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_float_wav_round_trips_within_24_bit_quantisation(tmp_path: Path, subtype: str) -> None:
    # Regression: float WAVs were read as unscaled integers and stored as near-silence.
    rng = np.random.default_rng(0)
    samples = np.clip(
        0.3 * np.sin(np.linspace(0, 900, 12_000)) + 0.05 * rng.standard_normal(12_000), -1, 1
    )
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, samples, 16_000, subtype=subtype)
    source = Example("f", 0.75, FileAudio(str(path)), "x", "en", "en")
    write_shards([source], tmp_path / "s")
    (stored,) = read_manifest(str(tmp_path / "s"))
    stored_pcm, _ = load_pcm(stored, "int32")
    original = sf.read(path, dtype="float64")[0]
    # Half a 24-bit step (plus a 32-bit one: rounded to int32 first) at most.
    assert np.max(np.abs(stored_pcm[:, 0] / 2**31 - original)) <= 2**-24 + 2**-32
    assert np.max(np.abs(load_audio(stored) - original)) <= 2**-23
    # Out of full scale: storing would clip, so the writer refuses (or skips and counts).
    sf.write(path, samples * 4, 16_000, subtype=subtype)
    with pytest.raises(AudioError, match=r"example 'f' .*float samples outside \[-1, 1\]"):
        write_shards([source], tmp_path / "loud")
    with pytest.raises(NoExamplesError) as caught:
        write_shards([source], tmp_path / "skip", ShardWriterConfig(on_error="skip"))
    assert caught.value.skipped is not None
    assert dict(caught.value.skipped.by_reason) == {"float samples outside [-1, 1]": 1}


def test_index_offsets_that_do_not_match_the_tar_are_an_error(corpus: dict, tmp_path: Path) -> None:
    # Regression: with two index offsets swapped, an example returned the other's audio (and
    # re-sharding copied it on). The tar header in front of the member must name the example.
    write_shards(read_manifest(str(corpus["manifest"])), tmp_path / "s")
    index = next((tmp_path / "s").glob("*.index.jsonl"))
    rows = [orjson.loads(line) for line in index.read_bytes().splitlines()]
    good = list(read_manifest(str(tmp_path / "s")))
    assert [load_audio(e).shape for e in good]  # all readable before the swap
    rows[1]["offset"], rows[3]["offset"] = rows[3]["offset"], rows[1]["offset"]
    rows[1]["size"], rows[3]["size"] = rows[3]["size"], rows[1]["size"]
    index.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    swapped = list(read_manifest(str(tmp_path / "s"), on_error="raise"))
    expected = r"example 'utt1' \(.*shard-000000\.tar @ byte \d+\): the tar member here is "
    expected += r"'utt3\.flac' \(\d+ bytes\), the index expects 'utt1\.flac'"
    with pytest.raises(AudioError, match=expected):
        load_audio(swapped[1])
    with pytest.raises(AudioError, match="the index does not match the tar"):
        write_shards(swapped, tmp_path / "copy")
    # An offset into the middle of a member: no valid header in front of it.
    shifted = dataclasses.replace(
        good[0], audio=good[0].audio._replace(offset=good[0].audio.offset + 100)
    )
    with pytest.raises(AudioError, match="no tar header in front of the member"):
        load_audio(shifted)


def test_index_that_disagrees_with_shards_json_is_an_error(corpus: dict, tmp_path: Path) -> None:
    # Regression: a truncated or extended index silently dropped examples or read extra ones.
    write_shards(read_manifest(str(corpus["manifest"])), tmp_path, ShardWriterConfig(shard_size=3))
    index = tmp_path / "shard-000001.index.jsonl"
    original = index.read_bytes()
    lines = original.splitlines(keepends=True)
    assert len(list(read_manifest(str(tmp_path)))) == 7
    for on_error in ("raise", "skip"):  # a whole shard is suspect: never skipped
        index.write_bytes(b"".join(lines[:2]))  # truncated
        message = rf"{index}: index has {len(lines[0] + lines[1])} bytes, "
        message += rf"{tmp_path / 'shards.json'} lists {len(original)} \(truncated"
        with pytest.raises(PadlessInputError, match=message):
            list(read_manifest(str(tmp_path), on_error=on_error))
    index.write_bytes(original + lines[0])  # extended
    with pytest.raises(PadlessInputError, match=r"shard-000001\.index\.jsonl: index has \d+ bytes"):
        list(read_manifest(str(tmp_path)))
    # The same size with a line fewer: the record count is checked too.
    padded = lines[0].rstrip(b"\n") + b" " * len(lines[1]) + b"\n"
    index.write_bytes(padded + lines[2])
    with pytest.raises(PadlessInputError, match=r"index has 2 records, .*shards\.json lists 3"):
        list(read_manifest(str(tmp_path)))
    # Every rank's slice checks the size; it does not matter which slot opens the index.
    index.write_bytes(original + lines[0])
    with pytest.raises(PadlessInputError):
        for rank in range(4):
            list(ExampleStream(str(tmp_path), rank=rank, world_size=4, block_bytes=64))


def test_keys_are_safe_and_distinct() -> None:
    ids = ["a/b.wav#1.500", "a_b_wav_1_500", "a:b.wav#1.500", "x" * 300, "plain-id_7"]
    keys = [shard_key(i) for i in ids]
    assert len(set(keys)) == len(keys)
    assert keys[1] == "a_b_wav_1_500" and keys[4] == "plain-id_7"  # unchanged when already safe
    assert all(len(k) <= 80 and all(c.isalnum() or c in "_-" for c in k) for k in keys)


def test_duplicate_ids_and_unreadable_audio(corpus: dict, tmp_path: Path) -> None:
    examples = list(read_manifest(str(corpus["manifest"])))
    with pytest.raises(PadlessInputError, match="duplicate example id 'utt1'"):
        write_shards([*examples, examples[1]], tmp_path / "dup")
    broken = corpus["root"] / "audio" / "utt3.wav"
    broken.write_bytes(b"RIFF....not audio")
    with pytest.raises(AudioError, match=r"example 'utt3' \(.*utt3\.wav\): cannot decode audio"):
        write_shards(examples, tmp_path / "raise")
    result = write_shards(
        [*examples, examples[1]], tmp_path / "skip", ShardWriterConfig(on_error="skip")
    )
    assert result.shards.examples == 6
    assert result.skipped.total == 2 and result.skipped.by_reason["duplicate id"] == 1
    assert any("example 'utt3'" in message for message in result.skipped.examples)
    assert [e.id for e in read_manifest(str(tmp_path / "skip"))] == [
        e.id for e in examples if e.id != "utt3"
    ]


def test_a_failed_write_leaves_no_tmp_files_and_nothing_to_write_is_an_error(
    corpus: dict, tmp_path: Path
) -> None:
    examples = list(read_manifest(str(corpus["manifest"])))
    (corpus["root"] / "audio" / "utt3.wav").write_bytes(b"RIFF....not audio")
    out = tmp_path / "failed"
    with pytest.raises(AudioError):
        write_shards(examples, out, ShardWriterConfig(shard_size=2))
    assert sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp")) == []
    assert not (out / "shards.json").exists()
    with pytest.raises(NoExamplesError, match=r"no examples to write \(skipped 1 malformed"):
        write_shards([examples[3]], tmp_path / "none", ShardWriterConfig(on_error="skip"))
    assert sorted(p.name for p in (tmp_path / "none").iterdir()) == []


def test_existing_shard_set_is_not_overwritten_by_accident(corpus: dict, tmp_path: Path) -> None:
    examples = list(read_manifest(str(corpus["manifest"])))
    write_shards(examples, tmp_path)
    with pytest.raises(FileExistsError, match=r"shards\.json exists"):
        write_shards(examples, tmp_path)
    write_shards(examples, tmp_path, ShardWriterConfig(shard_size=2, overwrite=True))
    write_shards(examples[:2], tmp_path, ShardWriterConfig(shard_size=2, overwrite=True))
    assert ShardSet.load(str(tmp_path)).examples == 2
    assert sorted(p.name for p in tmp_path.glob("shard-*")) == [
        "shard-000000.index.jsonl",
        "shard-000000.tar",
    ]  # no stale shards of the larger set


def test_shards_read_through_fsspec(corpus: dict, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    write_shards(read_manifest(str(corpus["manifest"])), out, ShardWriterConfig(shard_size=4))
    memory = fsspec.filesystem("memory")
    for path in out.iterdir():
        memory.pipe_file(f"/padless-shards/{path.name}", path.read_bytes())
    try:
        remote = list(read_manifest("memory://padless-shards"))
        local = list(read_manifest(str(out)))
        assert [_without_audio(e) for e in remote] == [_without_audio(e) for e in local]
        assert remote[0].audio.shard == "memory://padless-shards/shard-000000.tar"  # type: ignore[union-attr]
        np.testing.assert_array_equal(load_audio(remote[-1]), load_audio(local[-1]))
    finally:
        memory.rm("/padless-shards", recursive=True)


def test_cli_shard(corpus: dict, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    runner = CliRunner()
    result = runner.invoke(
        app, ["shard", str(corpus["manifest"]), "--out", str(out), "--shard-size", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 2 shard(s), 7 examples" in result.output
    assert "manifest lines: skipped 0 malformed records" in result.output
    assert ShardSet.load(str(out)).examples == 7

    bad = corpus["root"] / "with-bad-line.jsonl"
    bad.write_bytes(corpus["manifest"].read_bytes() + b'{"id": "z", "duration": -1, "text": "x"}\n')
    result = runner.invoke(
        app, ["shard", str(bad), "--out", str(tmp_path / "b"), "--on-error", "skip"]
    )
    assert result.exit_code == 0, result.output
    assert "skipped 1 malformed records (1 negative duration)" in result.output
    assert f"{bad}:8: negative duration -1" in result.output
