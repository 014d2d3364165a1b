"""`padless oomptimize` end to end: plan (real metadata or a small sample) in, table out, read by
the sampler's table policy; and the report's arithmetic against the 360 s heuristic."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers.models import small_config
from padless.batchsize.report import compare, heuristic_batch_size
from padless.batchsize.search import BucketResult, BucketShape
from padless.batchsize.sizes import format_bytes, parse_size
from padless.batchsize.table import bucket_shapes, read_plan
from padless.cli import app
from padless.model import AEDModel, save_checkpoint
from padless.sampling.config import PlanConfig
from padless.sampling.estimate import estimate_plan
from padless.sampling.filters import FilterConfig
from padless.sampling.plan import Bucket, BucketPlan, PlanError
from padless.sampling.policies import BucketBatchSizes


def small_plan(path: Path, durations: np.ndarray, tokens: np.ndarray, sub: int) -> BucketPlan:
    plan = estimate_plan(
        durations,
        tokens,
        PlanConfig(num_buckets=2, num_subbuckets=sub, bins="equal-duration"),
        FilterConfig(min_duration=0.5, max_duration=6.0),
    )
    plan.save(path)
    return plan


def test_cli_writes_a_table_the_sampler_accepts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    durations = rng.uniform(0.5, 6.0, 2000)
    tokens = (6 + durations * rng.uniform(2, 6, 2000)).astype(np.int64)
    plan = small_plan(tmp_path / "plan.json", durations, tokens, sub=2)
    checkpoint = tmp_path / "small.pt"
    save_checkpoint(checkpoint, AEDModel(small_config()))
    out = tmp_path / "table.json"
    result = CliRunner().invoke(
        app,
        [
            "oomptimize",
            "--model",
            str(checkpoint),
            "--plan",
            str(tmp_path / "plan.json"),
            "--probe",
            "simulate",
            "--target",
            "cpu",
            "--dtype",
            "fp32",
            "--memory-budget",
            "160MiB",
            "--out",
            str(out),
            "--plot",
            str(tmp_path / "table.png"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "batch size" in result.output and "heuristic" in result.output
    table = json.loads(out.read_text())
    assert table["format"] == "padless.batch_sizes" and table["probe"] == "simulate"
    assert table["memory_budget_bytes"] == 160 * 2**20
    sizes = BucketBatchSizes.load(out, plan).batch_sizes  # the sampler's own validation
    assert len(sizes) == 4 and all(n >= 1 for n in sizes)
    for row in table["buckets"]:
        assert row["peak_memory_measured"] and row["peak_memory_bytes"] <= 160 * 2**20
        expected = row["batch_size"] * row["max_duration"]
        assert row["batch_audio_s"] == pytest.approx(expected, abs=1e-3)
    # Within a duration bin the sub-bin with more tokens never gets a larger batch.
    assert sizes[1] <= sizes[0] and sizes[3] <= sizes[2]
    assert (tmp_path / "table.png").stat().st_size > 0


def test_cli_rejects_missing_budget(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    durations = rng.uniform(0.5, 6.0, 500)
    small_plan(tmp_path / "plan.json", durations, (durations * 4 + 6).astype(np.int64), sub=1)
    result = CliRunner().invoke(
        app,
        [
            "oomptimize",
            *("--model", "tiny-canary-1b", "--plan", str(tmp_path / "plan.json")),
            *("--probe", "simulate", "--out", str(tmp_path / "t.json")),
        ],
    )
    assert result.exit_code != 0
    assert "memory budget" in result.output


def test_plan_reading_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something-else", "version": 1, "buckets": []}))
    with pytest.raises(PlanError, match="not a bucket plan"):
        read_plan(bad)
    bucket = Bucket(0, 0.5, 10.0, None, None, 3, 12.0)
    with pytest.raises(PlanError, match="bucket 0 has no max_tokens; pass tokens_per_second"):
        bucket_shapes([bucket])
    assert bucket_shapes([bucket], tokens_per_second=25.0)[0].max_tokens == 250
    # An empty bucket is named as empty, not as one missing its max_tokens.
    empty = Bucket(1, 10.0, 10.0, None, None, 0, 0.0)
    with pytest.raises(PlanError, match=r"bucket 1 is empty \(no example of the plan's sample"):
        bucket_shapes([empty, bucket], tokens_per_second=None)


def test_real_plan_shapes(real_data_dir: Path, tmp_path: Path) -> None:
    """Shapes from a 30x2 plan of real durations: every bucket has finite edges."""
    durations = []
    for line in (real_data_dir / "librispeech_clean_dev_test.en.jsonl").read_text().splitlines():
        row = json.loads(line)
        durations.append((row["duration"], 6 + len(row["text"]) // 4))
    d, t = np.array(durations).T
    plan = estimate_plan(
        d,
        t.astype(np.int64),
        PlanConfig(num_buckets=30, num_subbuckets=2, bins="equal-duration"),
        FilterConfig(min_duration=0.5, max_duration=40.0),
    )
    plan.save(tmp_path / "plan.json")
    shapes = bucket_shapes(read_plan(tmp_path / "plan.json"))
    assert len(shapes) == 60
    assert all(s.max_tokens > 0 and 0 < s.max_duration <= 40 for s in shapes)
    assert all(a.max_duration <= b.max_duration for a, b in zip(shapes, shapes[2:], strict=False))


def test_report_weights_buckets_by_their_steps() -> None:
    # Two buckets: 1000 short examples (1 s), 100 long ones (30 s).
    buckets = [
        Bucket(0, 0.5, 1.5, None, 20, 1000, 1000.0),
        Bucket(1, 20.0, 40.0, None, 300, 100, 3000.0),
    ]
    assert [heuristic_batch_size(b) for b in buckets] == [360, 12]

    def result(shape: BucketShape, n: int) -> BucketResult:
        return BucketResult(shape, n, n, n + 1, None, False, ())

    found = [result(BucketShape(1.5, 20, 0), 720), result(BucketShape(40.0, 300, 1), 24)]
    c = compare(buckets, found)
    assert c.weighting == "occupancy"
    # Steps per epoch: heuristic 1000/360 + 100/12, search 1000/720 + 100/24 (half as many).
    steps_h, steps_s = 1000 / 360 + 100 / 12, 1000 / 720 + 100 / 24
    assert c.heuristic.steps_per_epoch == pytest.approx(steps_h)
    assert c.searched.mean_batch_size == pytest.approx(1100 / steps_s)
    assert c.searched.mean_batch_audio_s == pytest.approx(4000 / steps_s)
    assert c.batch_size_ratio == pytest.approx(2.0)
    assert c.unweighted_ratio == pytest.approx((720 + 24) / (360 + 12))


def test_sizes() -> None:
    assert parse_size("80GiB") == 80 * 2**30
    assert parse_size("40 GB") == 40 * 10**9
    assert parse_size("512MiB") == 512 * 2**20
    assert math.isclose(parse_size("1.5g"), 1.5 * 2**30)
    assert parse_size("2B") == 2
    for bad in ("", "80 parsecs", "-1GiB", "GiB", "2", "0.5"):  # a bare number is no size
        with pytest.raises(ValueError):
            parse_size(bad)
    assert format_bytes(80 * 2**30) == "80 GiB"
    assert format_bytes(None) == "-"
