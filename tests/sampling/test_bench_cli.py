"""`padless bench-sampler` end to end: the --json contract, batch dumps, resume, lhotse peer."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from padless.cli import app

CONTRACT_KEYS = {
    "examples",
    "batches",
    "filtered",
    "audio_padding",
    "token_padding",
    "mean_batch_size",
    "examples_per_s",
    "first_batch_s",
    "peak_rss_mb",
    "per_bucket",
    "rank_agreement",
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, lengths_of):
    root = tmp_path_factory.mktemp("bench")
    manifest = root / "m.jsonl"
    dur, tok = lengths_of(4000, 3)
    with manifest.open("wb") as f:
        for i, (d, t) in enumerate(zip(dur, tok, strict=True)):
            f.write(
                orjson.dumps(
                    {"id": f"u{i}", "duration": float(d), "num_tokens": int(t), "lang": "en"}
                )
                + b"\n"
            )
    plan = root / "plan.json"
    result = CliRunner().invoke(
        app,
        [
            "plan",
            str(manifest),
            "--num-buckets",
            "8",
            "--num-subbuckets",
            "2",
            "--tps-max",
            "25",
            "--max-duration",
            "40",
            "--out",
            str(plan),
        ],
    )
    assert result.exit_code == 0, result.output
    return root, manifest, plan


def _bench(*args: str) -> dict:
    result = CliRunner().invoke(app, ["bench-sampler", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def _dump(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_json_contract_and_batch_dump(setup) -> None:
    root, manifest, plan = setup
    dump = root / "batches.jsonl"
    out = _bench(
        str(manifest),
        "--plan",
        str(plan),
        "--batch-duration",
        "150",
        "--world-size",
        "3",
        "--buffer-size",
        "600",
        "--dump-batches",
        str(dump),
    )
    assert set(out) >= CONTRACT_KEYS
    assert len(out["batches"]) == 3 and len(set(out["batches"])) == 1
    assert 0 < out["audio_padding"] < 0.2 and 0 < out["token_padding"] < 0.3
    assert out["stats_consistent"] is True
    assert len(out["rank_agreement_by_tenth"]) == 10 and out["rank_agreement"] > 0.8
    per_bucket = out["per_bucket"]
    assert len(per_bucket) == 16
    assert {"batches", "fallbacks", "dropped", "audio_padding", "token_padding"} <= set(
        per_bucket[0]
    )
    assert sum(b["batches"] for b in per_bucket) == sum(out["batches"])
    rows = _dump(dump)
    assert set(rows[0]) == {"rank", "step", "bucket", "ids"}
    assert len(rows) == sum(out["batches"])
    ids = Counter(i for row in rows for i in row["ids"])
    assert max(ids.values()) == 1 and len(ids) == out["examples"]
    assert out["examples"] + sum(out["filtered"].values()) == 4000
    for row in rows:  # within the budget, from the emitted batch itself
        assert row["bucket"] in range(16)


def test_resume_from_step_continues_with_the_same_batches(setup) -> None:
    root, manifest, plan = setup
    full, resumed = root / "full.jsonl", root / "resumed.jsonl"
    common = [
        str(manifest),
        "--plan",
        str(plan),
        "--batch-size",
        "9",
        "--world-size",
        "2",
        "--buffer-size",
        "500",
    ]
    _bench(*common, "--dump-batches", str(full))
    out = _bench(
        *common, "--dump-batches", str(resumed), "--resume-from-step", "40", "--concurrent"
    )
    tail = [r for r in _dump(full) if r["step"] >= 40]
    assert _dump(resumed) == tail
    assert out["resume"]["step"] == 40 and len(out["resume"]["state_bytes_per_rank"]) == 2


def test_compare_lhotse_reports_the_same_keys(setup) -> None:
    _root, manifest, plan = setup
    out = _bench(
        str(manifest),
        "--plan",
        str(plan),
        "--batch-duration",
        "150",
        "--world-size",
        "2",
        "--buffer-size",
        "600",
        "--compare",
        "lhotse",
    )
    peer = out["lhotse"]
    assert set(peer) >= CONTRACT_KEYS
    assert peer["examples"] > 0 and len(peer["batches"]) == 2
    assert peer["peak_rss_mb"] > 0
    assert out["ratios"]["examples_per_s"] > 0


def test_exactly_one_batch_size_option(setup) -> None:
    _, manifest, plan = setup
    result = CliRunner().invoke(
        app,
        [
            "bench-sampler",
            str(manifest),
            "--plan",
            str(plan),
            "--batch-size",
            "4",
            "--batch-duration",
            "9",
        ],
    )
    assert result.exit_code != 0 and "exactly one" in result.output


@pytest.mark.parametrize(("option", "value"), [("--world-size", "0"), ("--epochs", "0")])
def test_ranks_and_epochs_below_one_are_usage_errors(setup, option: str, value: str) -> None:
    # Regression: --world-size 0 ended in an IndexError traceback, --epochs 0 in 0 batches.
    _, manifest, plan = setup
    args = ["bench-sampler", str(manifest), "--plan", str(plan), "--batch-size", "4"]
    result = CliRunner().invoke(app, [*args, option, value])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert option in result.output and f"must be at least 1, got {value}" in result.output


def test_step_log_agreement_and_spread() -> None:
    from padless.peers.compare import StepLog

    log = StepLog()
    for i in range(20):  # ranks agree on every step but the last two
        log.add([3, 3] if i < 18 else [3, 4], [10.0, 10.0] if i < 18 else [10.0, 30.0])
    overall, tenths = log.agreement()
    assert overall == 0.9 and tenths == [1.0] * 9 + [0.0]
    spread = log.spread()
    assert spread["p50"] == 1.0 and spread["mean"] == pytest.approx(1.2)


def test_only_the_options_given_replace_the_mode_defaults(setup) -> None:
    """--paper's own settings stay unless an option names them; a given option wins."""
    _, manifest, plan = setup
    base = (str(manifest), "--plan", str(plan), "--batch-duration", "60")
    paper = _bench(*base, "--paper")["config"]["sampler"]
    assert paper["batching"] == {"kind": "random"}
    assert paper["bucket_draw"] == {"kind": "uniform"} and paper["assignment"] == "strict"
    mixed = _bench(*base, "--paper", "--batching", "sorted", "--lanes", "4", "--seed", "3")
    sampler = mixed["config"]["sampler"]
    assert sampler["batching"] == {"kind": "sorted", "lanes": 4, "spread": 1.0}
    assert sampler["bucket_draw"] == {"kind": "uniform"} and sampler["seed"] == 3
    default = _bench(*base, "--bucket-draw", "uniform", "--spread", "1.2")["config"]["sampler"]
    assert default["batching"] == {"kind": "sorted", "lanes": 32, "spread": 1.2}
    assert default["bucket_draw"] == {"kind": "uniform"} and default["assignment"] == "flexible"


def test_sorted_settings_with_random_batching_are_refused(setup) -> None:
    _, manifest, plan = setup
    args = [str(manifest), "--plan", str(plan), "--batch-size", "4", "--batching", "random"]
    result = CliRunner().invoke(app, ["bench-sampler", *args, "--lanes", "4"])
    assert result.exit_code == 2 and "--lanes and --spread apply to" in result.output


@pytest.mark.parametrize("world_size", [16, 8])
def test_a_small_manifest_over_many_ranks_keeps_every_example(tmp_path, world_size) -> None:
    # Regression: 17 lines of uneven length split by bytes leave some of 16 ranks without a
    # line; equal batch counts then dropped all 17 examples (3 of 17 on 8 ranks).
    rng = np.random.default_rng(1)
    manifest = tmp_path / "m.jsonl"
    with manifest.open("wb") as f:
        for i in range(17):
            row = {
                "id": f"u{i}",
                "duration": float(rng.uniform(1, 20)),
                "num_tokens": int(rng.integers(3, 90)),
                "text": "word " * int(rng.integers(1, 100)),
            }
            f.write(orjson.dumps(row) + b"\n")
    plan = tmp_path / "plan.json"
    args = ["plan", str(manifest), "--out", str(plan), "--num-buckets", "2"]
    assert CliRunner().invoke(app, args).exit_code == 0
    out = _bench(
        str(manifest),
        "--plan",
        str(plan),
        "--batch-duration",
        "60",
        "--world-size",
        str(world_size),
    )
    assert out["examples"] == 17 and out["filtered"] == {}
    assert len(set(out["batches"])) == 1
