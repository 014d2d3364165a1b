"""The paper experiments that train (bench/paper_e1_ddp.py, bench/paper_e2_training.py,
bench/paper_e4_convergence.py): a ``--quick`` run of each writes its dated record, JSON and
plot, with the table of our figures next to the paper's; the runs behave as their settings say
(synchronized buckets agree more often, duration budgets bound the padded audio, sorted batches
pad fewer tokens, seeds change the batches, validation runs on its interval)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):  # bench/ is a folder of scripts, not a package
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


paper = _load("paper")


def _run_quick(script: str, record: str, tmp_path: Path) -> tuple[str, dict, Path]:
    """Run ``bench/<script> --quick`` into ``tmp_path``; the text and JSON of its dated record
    ``<date>-<record>``, and the work folder."""
    out, work = tmp_path / "out", tmp_path / "work"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"))
    cmd = [sys.executable, f"bench/{script}", "--quick", "--work", str(work), "--out-dir", str(out)]
    # Its own process group: on a timeout the training processes it started go with it
    # (subprocess.run's timeout kills the script alone and would leave them running).
    with subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    ) as proc:  # fmt: skip
        try:
            _, stderr = proc.communicate(timeout=900)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    assert proc.returncode == 0, stderr.decode()[-4000:]
    md = list(out.glob("*.md"))
    assert len(md) == 1 and md[0].name.endswith(f"-{record}.md")
    data = json.loads(md[0].with_suffix(".json").read_text())
    assert data["config"]["quick"] is True
    assert list(out.glob("*.png")), "the record's plot"
    return md[0].read_text(), data, work


@pytest.mark.slow
def test_e1_ddp_quick_writes_its_record(tmp_path: Path) -> None:
    text, data, _ = _run_quick("paper_e1_ddp.py", "e1-ddp", tmp_path)
    rows = paper.parse_paper_table(text)
    assert [r["measure"] for r in rows] == ["lower step time, 2 ranks", "lower step time, 4 ranks"]
    assert [r["paper"] for r in rows] == ["7.0%", "-"]  # the paper has no 4-GPU figure
    assert all(r["ours"].endswith("%") for r in rows)
    assert "4 ranks oversubscribe" in text or data["config"]["usable_cores"] >= 4
    runs = data["runs"]
    steps = data["config"]["steps"] - data["config"]["warmup_steps_left_out"]
    for nproc in (2, 4):
        on, off = runs[f"{nproc} ranks, sync"][0], runs[f"{nproc} ranks, no sync"][0]
        assert on["steps"] == off["steps"] == steps
        # Synchronized buckets: ranks agree on the bucket more often than independent draws.
        assert on["same_bucket"] > off["same_bucket"]
        for r in (on, off):
            assert r["step_max_s"] >= r["step_mean_s"] > 0
    assert {row["label"] for row in data["paper"]} == {r["measure"] for r in rows}


@pytest.mark.slow
def test_e2_training_quick_writes_its_record(tmp_path: Path) -> None:
    from padless.eval.plot_run import read_run

    text, data, work = _run_quick("paper_e2_training.py", "e2-training", tmp_path)
    rows = {r["measure"]: r for r in paper.parse_paper_table(text)}
    assert rows["mean batch size, C / A"]["paper"] == "3.40x"
    assert rows["mean batch size, D / A"]["paper"] == "5.00x"
    assert rows["audio padding, D"]["paper"] == "4.5%"
    assert rows["token padding, D"]["paper"] == "19.0%"
    assert {f"audio s per wall s, {s} / A" for s in "BCDE"} <= set(rows)
    for row in rows.values():  # a flagged row carries its measured explanation
        assert row["flag"] in ("", "DIFFERS")
    assert "(unexplained)" not in text
    for scheme in "ABCDE":
        assert f"| {scheme}: " in text
    results = data["results"]
    assert results["A"]["batch_over_A"] == 1.0
    budget = data["config"]["duration_budget_s"]
    for name in "AB":  # the duration budget bounds every batch's padded audio
        padded = read_run(work / name).padded_audio_s()
        assert np.nanmax(padded) <= budget * 1.001
    for name in "CDE":  # a searched table: no batch above the table's largest size
        sizes = read_run(work / name).values["batch_size"]
        assert np.nanmax(sizes) <= max(results[name]["batch_sizes"])
    # Sorted batches (E) pad far fewer tokens than random ones on the same 2D grid (D).
    assert results["E"]["token_padding"] < results["D"]["token_padding"]


def test_e4_fixed_scheme_is_fixed_batch_yaml_on_the_recipe() -> None:
    """E4's fixed scheme is the recipe with the sampling of configs/fixed-batch.yaml."""
    from padless.train.config import load_training_config

    e4 = _load("paper_e4_convergence")
    configs = REPO_ROOT / "configs"
    baseline = load_training_config(configs / "fixed-batch.yaml")
    recipe = load_training_config(configs / "demo-tiny.yaml")
    [fixed] = [s for s in e4.schemes(baseline.batch.batch_size) if s.name == "fixed"]
    ours = load_training_config(configs / "demo-tiny.yaml", list(fixed.overrides))
    assert ours.batch == baseline.batch
    assert ours.sampler.batching == baseline.sampler.batching
    assert ours.data.filters == baseline.data.filters
    estimate = (ours.data.estimate.num_buckets, ours.data.estimate.num_subbuckets)
    assert estimate == (baseline.data.estimate.num_buckets, baseline.data.estimate.num_subbuckets)
    assert ours.model == recipe.model and ours.optim == recipe.optim
    # The default fixed size: the most utterances of the longest allowed within the budget.
    size = e4.fixed_batch_size("configs/demo-tiny.yaml", REPO_ROOT / "data" / "demo")
    assert size * recipe.data.filters.max_duration <= recipe.batch.max_duration
    assert (size + 1) * recipe.data.filters.max_duration > recipe.batch.max_duration


@pytest.mark.slow
def test_e4_convergence_quick_writes_its_record(tmp_path: Path) -> None:
    from padless.eval.plot_run import read_run

    text, data, work = _run_quick("paper_e4_convergence.py", "e4-convergence", tmp_path)
    rows = {r["measure"]: r for r in paper.parse_paper_table(text)}
    assert rows["steps to the target dev loss, fixed / paper sampler"]["paper"] == "2.00x"
    assert rows["audio padding, fixed"]["paper"] == "57.0%"
    assert rows["token padding, fixed"]["paper"] == "59.0%"
    assert rows["audio padding, paper"]["paper"] == "4.5%"
    assert rows["token padding, paper"]["paper"] == "19.0%"
    assert "(unexplained)" not in text
    config, results = data["config"], data["results"]
    steps, every = config["steps_per_run"], config["validation_every_steps"]
    names = {f"{s}-s{seed}" for s in ("fixed", "paper", "padless") for seed in (0, 1)}
    assert set(results) == names
    for name, r in results.items():
        assert r["steps"] == steps
        assert [p["step"] for p in r["curve"]] == list(range(every, steps + 1, every))
        assert all(p["dev_loss"] > 0 and p["wer_avg"] is not None for p in r["curve"])
        train_s = [p["train_s"] for p in r["curve"]]
        assert train_s == sorted(train_s) and train_s[0] > 0
        assert 0 <= r["repeated_pairs"] <= 1
        reached = data["targets"]["dev_loss"]["runs"][name]["steps"]
        assert reached is not None and 0 < reached <= steps
    from padless.train.config import load_training_config

    budget = load_training_config(REPO_ROOT / "configs" / "demo-tiny.yaml").batch.max_duration
    size = config["fixed_batch_size"]
    for seed in (0, 1):
        fixed = read_run(work / f"fixed-s{seed}")
        assert set(np.unique(fixed.values["batch_size"])) == {size}
        assert len(fixed.bucket_labels) == 1
        assert np.nanmax(fixed.padded_audio_s()) <= budget * 1.001  # the size fits the budget
        # Random batches pad more audio than bucketed ones; sorted lanes fewer tokens than
        # random batches in buckets.
        paper_run, padless = results[f"paper-s{seed}"], results[f"padless-s{seed}"]
        assert results[f"fixed-s{seed}"]["audio_padding"] > paper_run["audio_padding"]
        assert padless["token_padding"] < paper_run["token_padding"]
    # The seeds change the batches.
    first = [
        (work / f"paper-s{seed}" / "batches.jsonl").read_text().splitlines()[:3] for seed in (0, 1)
    ]
    assert first[0] != first[1]
    assert set(data["sorted_vs_random"]["step"]["metrics"]) == {"dev_loss", "wer_avg", "bleu_avg"}
