"""The bad-input table: each malformed manifest line raises ``file:line: reason``, or under
``on_error="skip"`` is skipped and counted under its reason. Nothing is dropped silently."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import orjson
import pytest

from padless.data.errors import ManifestError
from padless.data.stream import ExampleStream, read_manifest

GOOD = {"id": "ok", "duration": 1.0, "text": "fine", "source_lang": "en", "target_lang": "en"}
LANGUAGES = frozenset({"de", "en", "es", "fr"})

# (case id, line 2 of the manifest, exact reason, skip-count key)
NEMO_CASES = [
    (
        "bad JSON",
        '{"id": "b", "duration": 1.0,',
        "bad JSON at column 29: unexpected end of data",
        "bad JSON",
    ),
    ("not an object", "[1, 2]", "expected a JSON object, got list", "not an object"),
    ("missing duration", '{"id": "b", "text": "x"}', "missing duration", "missing duration"),
    (
        "null duration",
        '{"id": "b", "duration": null, "text": "x"}',
        "missing duration",
        "missing duration",
    ),
    (
        "non-numeric duration",
        '{"id": "b", "duration": "1.5s", "text": "x"}',
        "non-numeric duration '1.5s'",
        "non-numeric duration",
    ),
    (
        "boolean duration",
        '{"id": "b", "duration": true, "text": "x"}',
        "non-numeric duration True",
        "non-numeric duration",
    ),
    (
        "negative duration",
        '{"id": "b", "duration": -1.5, "text": "x"}',
        "negative duration -1.5",
        "negative duration",
    ),
    ("zero duration", '{"id": "b", "duration": 0, "text": "x"}', "zero duration", "zero duration"),
    # Python's json module writes NaN, which strict JSON does not allow; the reader still says
    # which field is wrong.
    ("NaN duration", '{"id": "b", "duration": NaN, "text": "x"}', "NaN duration", "NaN duration"),
    ("missing text", '{"id": "b", "duration": 1.0}', "missing text", "missing text"),
    ("null text", '{"id": "b", "duration": 1.0, "text": null}', "missing text", "missing text"),
    (
        "whitespace text",
        '{"id": "b", "duration": 1.0, "text": " \\t "}',
        "missing text (whitespace only)",
        "missing text",
    ),
    (
        "text not a string",
        '{"id": "b", "duration": 1.0, "text": 5}',
        "text is not a string: 5",
        "bad text",
    ),
    (
        "language outside the set",
        '{"id": "b", "duration": 1.0, "text": "x", "source_lang": "it"}',
        "unknown source_lang 'it' (expected one of de, en, es, fr)",
        "unknown language",
    ),
    (
        "not a language code",
        '{"id": "b", "duration": 1.0, "text": "x", "source_lang": "en", "target_lang": "Deu tsch"}',
        "unknown target_lang 'Deu tsch' (not a language code)",
        "unknown language",
    ),
    (
        "missing language with a set",
        '{"id": "b", "duration": 1.0, "text": "x"}',
        "missing source_lang",
        "missing language",
    ),
    (
        "unknown taskname",
        '{"id": "b", "duration": 1.0, "text": "x", "lang": "en", "taskname": "summarize"}',
        "unknown taskname 'summarize'",
        "unknown task",
    ),
    (
        "bad pnc",
        '{"id": "b", "duration": 1.0, "text": "x", "lang": "en", "pnc": "maybe"}',
        "bad pnc 'maybe' (expected yes/no/true/false)",
        "bad pnc",
    ),
    (
        "missing id and audio",
        '{"duration": 1.0, "text": "x", "lang": "en"}',
        "missing id (and no audio_filepath to derive one from)",
        "missing id",
    ),
    (
        "negative offset",
        '{"audio_filepath": "a.wav", "offset": -2, "duration": 1.0, "text": "x", "lang": "en"}',
        "bad offset -2 (expected seconds >= 0)",
        "bad offset",
    ),
]


def _manifest(tmp_path: Path, bad_line: str, name: str = "m.jsonl") -> Path:
    """Line 1 good, line 2 bad, line 3 blank (not a record), line 4 good."""
    path = tmp_path / name
    good2 = {**GOOD, "id": "ok2"}
    path.write_bytes(
        orjson.dumps(GOOD) + b"\n" + bad_line.encode() + b"\n\n" + orjson.dumps(good2) + b"\n"
    )
    return path


@pytest.mark.parametrize(
    ("bad_line", "reason", "key"), [c[1:] for c in NEMO_CASES], ids=[c[0] for c in NEMO_CASES]
)
def test_nemo_bad_line(tmp_path: Path, bad_line: str, reason: str, key: str) -> None:
    path = _manifest(tmp_path, bad_line)
    with pytest.raises(ManifestError) as caught:
        list(read_manifest(str(path), languages=LANGUAGES))
    assert str(caught.value) == f"{path}:2: {reason}"
    assert (caught.value.path, caught.value.line, caught.value.reason) == (str(path), 2, reason)

    it = read_manifest(str(path), languages=LANGUAGES, on_error="skip")
    assert [e.id for e in it] == ["ok", "ok2"]
    assert dict(it.skipped.by_reason) == {key: 1}
    assert it.skipped.examples == [f"{path}:2: {reason}"]
    assert it.skipped.report() == f"skipped 1 malformed records (1 {key})"


def test_require_text_false_accepts_missing_text(tmp_path: Path) -> None:
    path = _manifest(tmp_path, '{"id": "b", "duration": 1.0, "lang": "en"}')
    assert [e.text for e in read_manifest(str(path), require_text=False)] == ["fine", None, "fine"]


def test_line_numbers_deep_in_a_split_file(tmp_path: Path) -> None:
    """Byte-range readers do not count lines on the fast path; the error path still names the
    right line, in any slot and block."""
    rows = [orjson.dumps({**GOOD, "id": f"e{i}"}) for i in range(500)]
    rows[377] = b'{"id": "bad", "duration": -3.0, "text": "x"}'
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"\n".join(rows) + b"\n")
    errors = []
    for rank in range(4):
        stream = ExampleStream(
            [str(path)], rank=rank, world_size=4, block_bytes=997, on_error="skip", seed=3
        )
        list(stream.open(1))
        errors += stream.skipped.examples
    assert errors == [f"{path}:378: negative duration -3.0"]


def test_skip_counts_accumulate_and_are_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = [orjson.dumps(GOOD).decode(), '{"id": "z", "duration": 0, "text": "x"}', "{oops", "[]"]
    lines += [
        '{"id": "y", "duration": -1, "text": "x"}',
        '{"id": "w", "duration": 0.0, "text": "x"}',
    ]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="padless.data"):
        it = read_manifest(str(path), on_error="skip")
        assert len(list(it)) == 1
    assert dict(it.skipped.by_reason) == {
        "zero duration": 2,
        "bad JSON": 1,
        "not an object": 1,
        "negative duration": 1,
    }
    assert "skipped 5 malformed records (2 zero duration" in caplog.text


# --- lhotse ------------------------------------------------------------------------------

_CUT = {
    "id": "c1",
    "start": 0.0,
    "duration": 1.0,
    "channel": 0,
    "supervisions": [
        {
            "id": "s",
            "recording_id": "r",
            "start": 0.0,
            "duration": 1.0,
            "text": "hi",
            "language": "English",
        }
    ],
    "recording": {
        "id": "r",
        "sources": [{"type": "file", "channels": [0], "source": "/data/r.wav"}],
        "sampling_rate": 16000,
        "num_samples": 16000,
        "duration": 1.0,
        "channel_ids": [0],
    },
    "type": "MonoCut",
}

LHOTSE_CASES = [
    (
        "speed perturbed",
        {
            **_CUT,
            "recording": {
                **_CUT["recording"],  # type: ignore[dict-item]
                "transforms": [{"name": "Speed", "kwargs": {"factor": 1.1}}],
            },
        },
        "unsupported recording transform 'Speed' (padless reads stored audio; "
        "only Resample is understood)",
        "unsupported transform",
    ),
    (
        "mixed cut",
        {"id": "m", "duration": 1.0, "type": "MixedCut", "tracks": []},
        "unsupported cut type 'MixedCut' (only MonoCut)",
        "unsupported cut",
    ),
    (
        "negative duration",
        {**_CUT, "duration": -1.0},
        "negative duration -1.0",
        "negative duration",
    ),
    ("no supervision text", {**_CUT, "supervisions": []}, "missing text", "missing text"),
    (
        "unknown language name",
        {**_CUT, "supervisions": [{**_CUT["supervisions"][0], "language": "Klingon"}]},  # type: ignore[index]
        "unknown source_lang 'Klingon' (not a language code)",
        "unknown language",
    ),
    (
        "command source",
        {
            **_CUT,
            "recording": {
                **_CUT["recording"],
                "sources": [{"type": "command", "channels": [0], "source": "sox x -"}],
            },
        },  # type: ignore[dict-item]
        "unsupported audio source type 'command' (file or url)",
        "bad source",
    ),
]


@pytest.mark.parametrize(
    ("cut", "reason", "key"), [c[1:] for c in LHOTSE_CASES], ids=[c[0] for c in LHOTSE_CASES]
)
def test_lhotse_bad_cut(tmp_path: Path, cut: dict, reason: str, key: str) -> None:
    path = tmp_path / "cuts.jsonl.gz"
    with gzip.open(path, "wb") as f:
        f.write(orjson.dumps(_CUT) + b"\n" + orjson.dumps(cut) + b"\n")
    with pytest.raises(ManifestError) as caught:
        list(read_manifest(str(path)))
    assert str(caught.value) == f"{path}:2: {reason}"
    it = read_manifest(str(path), on_error="skip")
    assert [e.id for e in it] == ["c1"]
    assert dict(it.skipped.by_reason) == {key: 1}


@pytest.mark.parametrize("first_is_cut", [True, False])
def test_lhotse_recording_manifest_is_named(tmp_path: Path, first_is_cut: bool) -> None:
    """A RecordingSet given where cuts are expected says so, at the first recording line."""
    path = tmp_path / "recordings.jsonl.gz"
    lines = [orjson.dumps(_CUT["recording"])] * 2
    if first_is_cut:
        lines[0] = orjson.dumps(_CUT)
    with gzip.open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    with pytest.raises(ManifestError) as caught:
        list(read_manifest(str(path)))
    assert str(caught.value).startswith(
        f"{path}:{2 if first_is_cut else 1}: not a cut (this looks like a lhotse RecordingSet"
    )
