"""NeMo JSON-lines reader: Canary fields, metadata-only and real-metadata manifests, URLs."""

from __future__ import annotations

from pathlib import Path

import fsspec
import orjson
import pytest

from padless.data.example import Example, FileAudio, derive_id
from padless.data.nemo import example_to_nemo
from padless.data.stream import read_manifest


def test_canary_fields_map_to_example(corpus: dict) -> None:
    examples = list(read_manifest(str(corpus["manifest"])))
    root = str(corpus["root"])
    assert [e.id for e in examples] == [r["id"] for r in corpus["rows"]]
    first, ast, seg = examples[0], examples[2], examples[-1]
    assert first == Example(
        id="utt0",
        duration=0.6,
        audio=FileAudio(f"{root}/audio/utt0.flac", 0.0, 0.6),
        text="Utterance number 0.",
        source_lang="en",
        target_lang="en",
        task="asr",
        pnc=False,
        extras={"speaker": "spk0"},
    )
    assert (ast.source_lang, ast.target_lang, ast.task, ast.pnc) == ("en", "de", "ast", True)
    assert seg.audio == FileAudio(f"{root}/audio/utt5.wav", 0.5, 1.0)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"taskname": "s2t_translation", "source_lang": "de", "target_lang": "en"}, "ast"),
        ({"taskname": "translate", "source_lang": "de", "target_lang": "en"}, "ast"),
        ({"taskname": "transcribe", "source_lang": "de", "target_lang": "de"}, "asr"),
        ({"source_lang": "de", "target_lang": "en"}, "ast"),  # no taskname: from languages
        ({"source_lang": "de"}, "asr"),  # target defaults to source
    ],
)
def test_task_names(jsonl, fields: dict, expected: str) -> None:
    (example,) = read_manifest(str(jsonl([{"id": "a", "duration": 1, "text": "x", **fields}])))
    assert example.task == expected
    assert example.target_lang == fields.get("target_lang", fields["source_lang"])


@pytest.mark.parametrize(
    ("value", "expected"), [("yes", True), ("no", False), (True, True), (False, False)]
)
def test_pnc_values(jsonl, value: object, expected: bool) -> None:
    (example,) = read_manifest(str(jsonl([{"id": "a", "duration": 1, "text": "x", "pnc": value}])))
    assert example.pnc is expected


def test_answer_is_the_target_and_text_stays_in_extras(jsonl) -> None:
    row = {"id": "a", "duration": 2.5, "text": "hallo welt", "answer": "hello world", "lang": "de"}
    (example,) = read_manifest(str(jsonl([row])))
    assert example.text == "hello world"
    assert example.extras == {"text": "hallo welt"}
    # ...and example_to_nemo writes it back the same way.
    assert example_to_nemo(example)["answer"] == "hello world"
    assert example_to_nemo(example)["text"] == "hallo welt"


def test_metadata_only_and_derived_ids(jsonl, tmp_path: Path) -> None:
    rows = [
        {"duration": 3.0, "text": "no id, no audio: needs an id", "id": "given"},
        {"audio_filepath": "a.wav", "duration": 1.5, "text": "derived id"},
        {"audio_filepath": "a.wav", "offset": 2.0, "duration": 1.5, "text": "with offset"},
        {"id": 17, "duration": 1.0, "text": "integer id"},
        {"id": "n", "duration": 1.0, "text": "tokens", "num_tokens": 12, "sampling_rate": 8000},
    ]
    examples = list(read_manifest(str(jsonl(rows))))
    path = str(tmp_path / "a.wav")
    assert examples[0].audio is None and examples[0].id == "given"
    assert examples[1].id == derive_id(path) == path
    assert examples[2].id == derive_id(path, 2.0) == f"{path}#2.000"
    assert examples[3].id == "17"
    assert (examples[4].num_tokens, examples[4].sampling_rate) == (12, 8000)
    assert examples[4].tokens_per_second == 12.0


def test_language_names_map_to_codes(jsonl) -> None:
    rows = [
        {"id": str(i), "duration": 1, "text": "x", "lang": v}
        for i, v in enumerate(["EN", "English", "pt-BR", "yue"])
    ]
    assert [e.source_lang for e in read_manifest(str(jsonl(rows)))] == ["en", "en", "pt-BR", "yue"]


def test_example_to_nemo_round_trips(corpus: dict, jsonl) -> None:
    examples = list(read_manifest(str(corpus["manifest"])))
    rows = [example_to_nemo(e, relative_to=str(corpus["root"])) for e in examples]
    assert rows[0]["audio_filepath"] == "audio/utt0.flac"
    rewritten = corpus["root"] / "rewritten.jsonl"
    rewritten.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    assert list(read_manifest(str(rewritten))) == examples


def test_fsspec_url_manifest_resolves_relative_paths() -> None:
    url = "memory://padless-test/sub/m.jsonl"
    rows = [
        {"audio_filepath": "audio/a.flac", "duration": 1.0, "text": "x", "id": "a", "lang": "en"},
        {"audio_filepath": "s3://bucket/b.flac", "duration": 2.0, "text": "y", "lang": "en"},
    ]
    with fsspec.open(url, "wb") as f:
        f.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    try:
        a, b = read_manifest(url)
        assert a.audio == FileAudio("memory://padless-test/sub/audio/a.flac", 0.0, 1.0)
        assert b.audio == FileAudio("s3://bucket/b.flac", 0.0, 2.0)  # absolute URLs unchanged
        assert b.id == "s3://bucket/b.flac"
    finally:
        fsspec.filesystem("memory").rm("/padless-test", recursive=True)


def test_file_url_reads_like_a_path(corpus: dict) -> None:
    by_url = list(read_manifest(f"file://{corpus['manifest']}"))
    assert by_url == list(read_manifest(str(corpus["manifest"])))


def test_real_metadata_files(real_data_dir: Path) -> None:
    """Every line of the shared real metadata reads (durations-only file: text None)."""
    for path in sorted(real_data_dir.glob("*.jsonl")):
        lines = path.read_bytes().count(b"\n")
        examples = list(read_manifest(str(path), require_text=False))
        assert len(examples) == lines, path.name
        lang = path.name.split(".")[-2]
        assert {e.source_lang for e in examples} == {lang}
        assert all(e.audio is None and e.duration > 0 and e.task == "asr" for e in examples)
        assert examples[0].extras is not None and set(examples[0].extras) == {"source", "split"}
        if "durations_only" in path.name:
            assert all(e.text is None for e in examples)
        else:
            assert all(isinstance(e.text, str) for e in examples)
