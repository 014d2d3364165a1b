from typer.testing import CliRunner

import padless
from padless.cli import app
from padless.data.errors import ManifestError, SkipCounter
from padless.data.example import Example, FileAudio, derive_id


def test_version_and_help() -> None:
    assert padless.__version__
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "padless" in result.output.lower() or "Usage" in result.output


def test_example_record_defaults_and_tps() -> None:
    ex = Example(id="a", duration=2.0, audio=FileAudio("x.flac"))
    assert ex.task == "asr" and ex.pnc and ex.sampling_rate == 16_000
    assert ex.tokens_per_second is None
    ex.num_tokens = 10
    assert ex.tokens_per_second == 5.0
    assert derive_id("a/b.wav") == "a/b.wav"
    assert derive_id("a/b.wav", 1.5) == "a/b.wav#1.500"


def test_skip_counter_reports_by_reason() -> None:
    counter = SkipCounter(keep_examples=1)
    counter.add(ManifestError("m.jsonl", 3, "bad JSON"))
    counter.add(ManifestError("m.jsonl", 7, "bad JSON"))
    assert counter.total == 2
    assert counter.by_reason["bad JSON"] == 2
    assert counter.examples == ["m.jsonl:3: bad JSON"]
    assert "skipped 2" in counter.report()
