"""`padless demo --quick` end to end: every stage runs, the report has every section and key with
sane values, kept steps are not redone, and a rerun of the seeded stages gives the same numbers."""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from padless.cli import app
from padless.demo.config import REPORT_JSON, REPORT_MD, STEPS_DIR, DemoConfig
from padless.demo.report import SECTIONS, TIMING_KEYS
from padless.demo.steps import STEPS, DemoContext, load_recipe

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "configs" / "demo-tiny.yaml"
FRACTIONS = ("audio_padding", "token_padding", "baseline_audio_padding", "baseline_token_padding")
#: Steps redone in the rerun (the seeded ones whose numbers must repeat).
REDONE = ("plan", "padding", "train", "evaluate")


def _run(out: Path) -> str:
    result = CliRunner().invoke(
        app, ["demo", "--out", str(out), "--quick", "--config", str(RECIPE)]
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def _without_timings(report: dict[str, object]) -> dict[str, object]:
    out = {k: v for k, v in report.items() if k not in TIMING_KEYS}
    steps = dict(report["steps"])  # type: ignore[call-overload]
    steps["train"] = {
        k: v for k, v in steps["train"].items() if k not in {"wall_s", "summary", "audio_s_per_s"}
    }
    steps.pop("rtfx")
    out["steps"] = steps
    return out


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    output = _run(out)
    assert f"report: {out / REPORT_MD}" in output.replace("\n", "")
    return out


def test_report_has_every_section_plot_and_key(demo_dir: Path) -> None:
    md = (demo_dir / REPORT_MD).read_text(encoding="utf-8")
    headings = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert headings == list(SECTIONS)
    for image in [
        line.split("(")[1].rstrip(")") for line in md.splitlines() if line.startswith("![")
    ]:
        assert (demo_dir / image).stat().st_size > 10_000, image  # a drawn PNG, not an empty one
    assert md.count("![") == 5  # plan, padding, training loss, scores, RTFx

    report = json.loads((demo_dir / REPORT_JSON).read_text())
    quick = DemoConfig().quick
    assert report["train_steps"] == quick.train_steps
    assert report["steps"]["train"]["max_steps"] == quick.train_steps
    for key in FRACTIONS:
        assert 0.0 <= report[key] < 1.0, key
    # The optimized scheme pads less than random fixed-size batches on the same metadata.
    assert report["audio_padding"] < report["baseline_audio_padding"]
    assert report["token_padding"] < report["baseline_token_padding"]
    assert report["train_wall_s"] > 0 and report["rtfx_kv"] > 0 and report["rtfx_recompute"] > 0
    assert report["wer"] and report["bleu"]  # the quick test split has ASR and AST examples
    for score in (*report["wer"].values(), *report["bleu"].values()):
        assert math.isfinite(score) and score >= 0
    assert report["wer_avg"] == pytest.approx(sum(report["wer"].values()) / len(report["wer"]))
    assert report["bleu_avg"] == pytest.approx(sum(report["bleu"].values()) / len(report["bleu"]))
    assert report["steps"]["evaluate"]["utterances"] == report["test_utterances"] > 0
    timings = report["timings"]
    assert set(timings) >= {
        "corpus",
        "tokenizer",
        "plan",
        "batch_sizes",
        "padding",
        "train",
        "evaluate",
        "rtfx",
        "report",
        "total",
    }
    assert all(t["seconds"] >= 0 for t in timings.values())


def test_a_complete_corpus_is_kept_and_counted(demo_dir: Path, tmp_path: Path) -> None:
    """A corpus made outside the demo (no step record, only its corpus.json) is not remade."""
    out = tmp_path / "corpus"
    shutil.copytree(demo_dir, out, ignore=shutil.ignore_patterns(STEPS_DIR))
    before = (out / "train.jsonl").stat().st_mtime_ns
    config = DemoConfig(out=out, training_config=RECIPE).quick_variant()
    ctx = DemoContext(config, Console(file=io.StringIO()), load_recipe(RECIPE, out))
    corpus = STEPS[0]
    assert corpus.key == "corpus"
    data = corpus.run(ctx)
    assert ctx.kept and (out / "train.jsonl").stat().st_mtime_ns == before
    first = json.loads((demo_dir / REPORT_JSON).read_text())["steps"]["corpus"]
    assert data["splits"].keys() == first["splits"].keys()
    for split, counts in first["splits"].items():
        assert data["splits"][split]["utterances"] == counts["utterances"]
        assert data["splits"][split]["seconds"] == pytest.approx(counts["seconds"])


def test_rerun_keeps_steps_and_repeats_the_numbers(demo_dir: Path, tmp_path: Path) -> None:
    first = json.loads((demo_dir / REPORT_JSON).read_text())
    # A second run in a copy: the corpus, tokenizer, batch sizes and RTFx are kept; plan,
    # padding, training and evaluation are redone from their seeds.
    again = tmp_path / "again"
    shutil.copytree(demo_dir, again)
    for key in REDONE:
        (again / STEPS_DIR / f"{key}.json").unlink()
    shutil.rmtree(again / "run")
    _run(again)
    second = json.loads((again / REPORT_JSON).read_text())
    for key, timing in second["timings"].items():
        if key in REDONE:
            assert not timing["kept"], key
        elif key not in {"report", "total"}:
            assert timing["kept"], key
    a, b = _without_timings(first), _without_timings(second)
    # Paths differ between the folders; everything else must be equal.
    assert json.loads(json.dumps(a).replace(str(demo_dir), "DIR")) == json.loads(
        json.dumps(b).replace(str(again), "DIR")
    )
