from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import padless
from padless.cli import app, main
from padless.data.errors import ManifestError, SkipCounter
from padless.data.example import Example, FileAudio, derive_id

#: The top-level commands and command groups; a new one is added here on purpose.
COMMANDS = {
    "bench-rtfx",
    "bench-sampler",
    "convert",
    "corpus",
    "demo",
    "evaluate",
    "manifest",
    "model",
    "oomptimize",
    "plan",
    "plot-run",
    "shard",
    "tokenizer",
    "train",
    "transcribe",
    "version",
}


def test_version_and_help_lists_every_command() -> None:
    version = CliRunner().invoke(app, ["version"])
    assert version.exit_code == 0 and version.output.strip() == padless.__version__
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert set(typer.main.get_command(app).commands) == COMMANDS  # type: ignore[attr-defined]
    # Each command opens a row of the help's command table: "│ name   description │".
    listed = {row.split()[1] for row in result.output.splitlines() if row.startswith("│ ")}
    assert listed >= COMMANDS, f"missing from --help: {COMMANDS - listed}"


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


def test_entry_point_turns_bad_input_into_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`padless` (the console script) ends bad input with ``error: ...`` and status 2, no
    traceback: a missing manifest (caught by the entry point itself), and a malformed line
    naming file and line (caught by the command)."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"audio_filepath": "a.wav", "duration": 1.0, "text": "x"}\n{not json\n')
    for argv, expected in (
        (["plan", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "p.json")], "missing"),
        (["manifest", "stats", str(bad)], f"{bad}:2:"),
    ):
        monkeypatch.setattr("sys.argv", ["padless", *argv])
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "error: " in err and expected in err and "Traceback" not in err
