"""Every `padless` command meets bad input the same way: exit status 2 and one line
``error: ...`` naming what is wrong (the file with its line, the option, the bucket or the
row); never a traceback, never exit status 0 with nothing done."""

from __future__ import annotations

import json

import orjson
import pytest
import typer
from typer.testing import CliRunner

from padless.cli import app
from padless.sampling.config import PlanConfig
from padless.sampling.estimate import estimate_plan
from padless.sampling.filters import FilterConfig


def _commands() -> set[str]:
    """Every leaf command of the app, as its words ("tokenizer train")."""
    out = set()

    def walk(command: object, path: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            out.add(" ".join(path))
            return
        for name, sub in subcommands.items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("cli-errors")
    rows = [
        {"id": f"u{i}", "duration": 1.0 + i, "num_tokens": 5 + 2 * i, "text": "hello there"}
        for i in range(12)
    ]
    good = root / "good.jsonl"
    good.write_bytes(b"".join(orjson.dumps({**r, "lang": "en"}) + b"\n" for r in rows))
    (root / "empty.jsonl").write_bytes(b"")
    (root / "blank.jsonl").write_bytes(b"\n  \n")
    (root / "folder").mkdir()
    plan = estimate_plan(
        [r["duration"] for r in rows],
        [r["num_tokens"] for r in rows],
        PlanConfig(2, 1),
        FilterConfig(tps_max=50.0),
    )
    plan.save(root / "plan.json")
    doc = plan.to_json()
    (root / "plan-shape.json").write_text(json.dumps({**doc, "buckets": 5}))
    (root / "plan-list.json").write_text("[1, 2]")
    (root / "not-json.json").write_text("{")
    table = {
        "format": "padless.batch_sizes",
        "version": 1,
        "buckets": [
            {"index": b.index, "max_duration": b.max_duration, "max_tokens": b.max_tokens}
            for b in plan.buckets
        ],
    }
    (root / "table-no-size.json").write_text(json.dumps(table))
    (root / "bad-config.yaml").write_text("train: [unclosed\n")
    (root / "train-config.yaml").write_text(f"data:\n  train: {root / 'missing.jsonl'}\n")
    # Every example outside the plan's filters.
    short = root / "short.jsonl"
    short.write_bytes(
        b"".join(
            orjson.dumps({"id": f"s{i}", "duration": 0.01, "num_tokens": 900, "lang": "en"}) + b"\n"
            for i in range(5)
        )
    )
    no_tokens = root / "no-tokens.jsonl"
    no_tokens.write_bytes(b'{"id": "a", "duration": 1.5, "text": "hi", "lang": "en"}\n')
    (root / "exists").mkdir()
    (root / "exists" / "shards.json").write_text("{}")
    return {p.stem: str(p) for p in root.iterdir()} | {
        "root": str(root),
        "missing": str(root / "missing.jsonl"),
    }


# (command words, arguments with {name} placeholders for `files`, text the error must contain)
CASES: list[tuple[str, list[str], str]] = [
    ("version", ["extra"], "unexpected extra argument"),
    # shard
    ("shard", ["{empty}", "--out", "{root}/s1"], "no examples in"),
    ("shard", ["{blank}", "--out", "{root}/s2"], "no examples in"),
    ("shard", ["{missing}", "--out", "{root}/s3"], "missing.jsonl"),
    ("shard", ["{folder}", "--out", "{root}/s4"], "not a shard set"),
    ("shard", ["{good}", "--out", "{root}/s5", "--shard-size", "0"], "--shard-size"),
    ("shard", ["{good}", "--out", "{root}/s6", "--jobs", "0"], "--jobs"),
    ("shard", ["{good}", "--out", "{root}/s7", "--on-error", "ignore"], "--on-error"),
    # plan
    ("plan", ["{empty}", "--out", "{root}/p.json"], "no examples in"),
    (
        "plan",
        ["{short}", "--out", "{root}/p.json", "--tps-max", "50"],
        "all 5 examples were filtered (5 tps",
    ),
    ("plan", ["{good}", "--out", "{root}/p.json", "--num-buckets", "0"], "--num-buckets"),
    ("plan", ["{good}", "--out", "{root}/p.json", "--bins", "magic"], "--bins"),
    ("plan", ["{good}", "--out", "{root}/p.json", "--sample-size", "0"], "--sample-size"),
    ("plan", ["{folder}", "--out", "{root}/p.json"], "not a shard set"),
    ("plan", ["{no-tokens}", "--out", "{root}/p.json"], "has no num_tokens"),
    ("plan", ["{good}", "--out", "{root}/p.json", "--min-duration", "-1"], "min_duration"),
    # bench-sampler
    (
        "bench-sampler",
        ["{good}", "--plan", "{plan}", "--batch-size", "2", "--world-size", "0"],
        "--world-size",
    ),
    (
        "bench-sampler",
        ["{good}", "--plan", "{plan}", "--batch-size", "2", "--epochs", "0"],
        "--epochs",
    ),
    ("bench-sampler", ["{good}", "--plan", "{plan}", "--batch-size", "0"], "--batch-size"),
    ("bench-sampler", ["{good}", "--plan", "{plan-shape}", "--batch-size", "2"], "plan-shape.json"),
    ("bench-sampler", ["{good}", "--plan", "{plan-list}", "--batch-size", "2"], "plan-list.json"),
    ("bench-sampler", ["{good}", "--plan", "{not-json}", "--batch-size", "2"], "not JSON"),
    ("bench-sampler", ["{good}", "--plan", "{missing}", "--batch-size", "2"], "missing.jsonl"),
    (
        "bench-sampler",
        ["{good}", "--plan", "{plan}", "--batch-sizes", "{table-no-size}"],
        "row 0 has no 'batch_size'",
    ),
    ("bench-sampler", ["{empty}", "--plan", "{plan}", "--batch-size", "2"], "no examples in"),
    (
        "bench-sampler",
        ["{short}", "--plan", "{plan}", "--batch-size", "2"],
        "all 5 examples were dropped",
    ),
    (
        "bench-sampler",
        ["{good}", "--plan", "{plan}", "--batch-size", "2", "--compare", "nemo"],
        "--compare",
    ),
    # manifest stats
    ("manifest stats", ["{empty}"], "no examples in"),
    ("manifest stats", ["{missing}"], "missing.jsonl"),
    ("manifest stats", ["{folder}"], "not a shard set"),
    # tokenizer
    ("tokenizer train", ["{empty}", "--out", "{root}/tok"], "no examples in"),
    (
        "tokenizer train",
        ["{good}", "--out", "{root}/tok2", "--vocab-per-lang", "1"],
        "--vocab-per-lang",
    ),
    ("tokenizer info", ["{folder}"], "folder"),
    ("tokenizer info", ["{missing}"], "missing.jsonl"),
    # model, transcription, RTFx
    ("model info", ["no-such-preset"], "no-such-preset"),
    ("transcribe", ["{missing}", "{good}"], "missing.jsonl"),
    ("transcribe", ["{good}", "{good}", "--task", "sing"], "--task"),
    ("bench-rtfx", ["--presets", "no-such-preset", "--manifest", "{good}"], "no-such-preset"),
    ("bench-rtfx", ["--presets", "tiny-canary-1b", "--manifest", "{empty}"], "no examples in"),
    (
        "bench-rtfx",
        ["--presets", "tiny-canary-1b", "--manifest", "{good}", "--batch-size", "0"],
        "--batch-size",
    ),
    # batch-size search
    (
        "oomptimize",
        [
            "--model",
            "tiny-canary-1b",
            "--plan",
            "{plan}",
            "--out",
            "{root}/t.json",
            "--memory-budget",
            "2",
        ],
        "--memory-budget",
    ),
    (
        "oomptimize",
        [
            "--model",
            "tiny-canary-1b",
            "--plan",
            "{plan-shape}",
            "--out",
            "{root}/t.json",
            "--memory-budget",
            "1GB",
        ],
        "plan-shape.json",
    ),
    (
        "oomptimize",
        [
            "--model",
            "no-such-preset",
            "--plan",
            "{plan}",
            "--out",
            "{root}/t.json",
            "--memory-budget",
            "1GB",
        ],
        "no-such-preset",
    ),
    # training, evaluation, run reports
    ("train", ["{missing}", "--run-dir", "{root}/run"], "missing.jsonl"),
    ("train", ["{bad-config}", "--run-dir", "{root}/run"], "bad-config.yaml"),
    ("train", ["{train-config}", "train.max_stepz=3", "--run-dir", "{root}/run"], "max_stepz"),
    ("train", ["{train-config}", "--run-dir", "{root}/run"], "data.tokenizer: required"),
    ("evaluate", ["{missing}", "{good}"], "missing.jsonl"),
    ("evaluate", ["{not-json}", "{good}"], "not-json.json"),
    ("evaluate", ["{not-json}", "{good}", "--beam", "0"], "--beam"),
    ("evaluate", ["{not-json}", "{empty}"], "no examples in"),
    ("plot-run", ["{folder}"], "metrics.jsonl"),
    ("plot-run", ["{missing}"], "missing.jsonl"),
    # corpus
    ("corpus synth", ["--out", "{root}/c", "--hours", "-1"], "--hours"),
    ("corpus synth", ["--out", "{root}/c", "--shard-size", "0"], "--shard-size"),
    ("demo", ["--out", "{root}/d", "--hours", "0"], "--hours"),
    ("demo", ["--out", "{root}/d", "--vocab-per-lang", "1"], "--vocab-per-lang"),
    ("demo", ["--out", "{root}/d", "--config", "{bad-config}"], "bad-config.yaml"),
    ("demo", ["--out", "{root}/d", "--config", "{missing}"], "missing.jsonl"),
    # NeMo conversion
    ("convert from-nemo", ["{missing}", "--out", "{root}/m.pt"], "missing.jsonl"),
    ("convert from-nemo", ["{good}", "--out", "{root}/m.pt"], "not a .nemo archive"),
    ("convert to-nemo", ["{missing}", "--out", "{root}/m.nemo"], "missing.jsonl"),
    ("convert to-nemo", ["{good}", "--out", "{root}/m.nemo"], "not a readable padless"),
]


def test_every_command_is_swept() -> None:
    assert {words for words, _, _ in CASES} == _commands()


@pytest.mark.parametrize(
    ("words", "args", "expected"),
    CASES,
    ids=[f"{w}:{' '.join(a)}" for w, a, _ in CASES],
)
def test_bad_input_is_one_error_line_and_exit_status_2(
    files: dict[str, str], words: str, args: list[str], expected: str
) -> None:
    argv = [*words.split(), *(a.format(**files) for a in args)]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # not an escaped exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], result.output
    assert "Traceback" not in result.output
    assert expected in errors[0], errors[0]


@pytest.mark.parametrize("argv", [[], ["tokenizer"], ["manifest"]])
def test_a_group_without_a_command_shows_its_help(argv: list[str]) -> None:
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2
    assert "Usage: padless" in result.output
    assert not any(line.startswith("error:") for line in result.output.splitlines())
