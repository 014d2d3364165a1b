"""`padless plan` end to end on a small metadata-only manifest."""

from __future__ import annotations

import json

import orjson
from typer.testing import CliRunner

from padless.cli import app
from padless.sampling.plan import BucketPlan


def _write_manifest(path, lengths_of, n: int = 3000) -> None:
    dur, tok = lengths_of(n, 7)
    with path.open("wb") as f:
        for i, (d, t) in enumerate(zip(dur, tok, strict=True)):
            row = {"id": f"u{i}", "duration": float(d), "num_tokens": int(t), "lang": "en"}
            if i % 500 == 0:
                row["num_tokens"] = int(d * 40)  # a high-TPS outlier for the filter
            f.write(orjson.dumps(row) + b"\n")


def test_plan_command_writes_plan_and_plot(tmp_path, lengths_of) -> None:
    manifest = tmp_path / "m.jsonl"
    _write_manifest(manifest, lengths_of)
    out, png = tmp_path / "plan.json", tmp_path / "plan.png"
    result = CliRunner().invoke(
        app,
        [
            "plan",
            str(manifest),
            "--num-buckets",
            "6",
            "--num-subbuckets",
            "2",
            "--bins",
            "optimal",
            "--tps-max",
            "25",
            "--min-duration",
            "0.5",
            "--max-duration",
            "40",
            "--sample-size",
            "1000",
            "--out",
            str(out),
            "--plot",
            str(png),
        ],
    )
    assert result.exit_code == 0, result.output
    plan = BucketPlan.load(out)
    assert len(plan) == 12 and plan.num_subbuckets == 2 and plan.bins == "optimal"
    assert plan.filtered == {"tps": 6}
    assert plan.sample["size"] == 1000 and plan.sample["examples_seen"] == 3000
    assert plan.buckets[-1].max_duration == 40.0
    data = json.loads(out.read_text())
    assert data["filters"] == {
        "min_duration": 0.5,
        "max_duration": 40.0,
        "max_tokens": None,
        "tps_max": 25.0,
    }
    assert png.stat().st_size > 10_000


def test_plan_command_rejects_bad_options(tmp_path, lengths_of) -> None:
    manifest = tmp_path / "m.jsonl"
    _write_manifest(manifest, lengths_of, 100)
    result = CliRunner().invoke(
        app, ["plan", str(manifest), "--bins", "quantile", "--out", str(tmp_path / "p.json")]
    )
    said = " ".join(result.output.replace("│", " ").split())  # unwrap the error box
    assert result.exit_code == 2
    assert "'quantile' is not one of 'equal-duration', 'optimal'" in said
