"""`padless plot-run`: metrics of generated two-rank runs (tests/eval/conftest.py) become PNGs
whose panels hold data, overlays for two runs, a summary computed from the lines, and clear
errors on malformed lines."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.image import imread
from typer.testing import CliRunner

from padless.cli import app
from padless.eval.plot_run import draw_figures, plot_runs, read_run, smooth, summarize

FIGURES = {"loss", "throughput", "padding", "batch_size", "step_time", "validation"}


def _coloured_pixels_per_panel(fig) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Saturated pixels inside each axes, by title: data drawn in colour (grid, frame and text
    are grey)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3].astype(int)
    saturated = (image.max(axis=-1) - image.min(axis=-1)) > 60
    height = image.shape[0]
    counts = {}
    for ax in fig.axes:
        box = ax.get_window_extent()
        x0, x1 = int(box.x0) + 3, int(box.x1) - 3
        y0, y1 = height - int(box.y1) + 3, height - int(box.y0) - 3  # display y grows upwards
        counts[ax.get_title()] = int(saturated[y0:y1, x0:x1].sum())
    return counts


def test_one_run(tmp_path: Path, metrics_run: Callable[..., Path]):
    metrics_run(tmp_path / "run", steps=80)
    written, [summary] = plot_runs([tmp_path / "run"], tmp_path / "plots")
    assert {p.stem for p in written} == FIGURES
    for path in written:
        image = imread(path)
        assert image.shape[0] > 300 and image.shape[1] > 500 and image.std() > 0.05
    assert orjson.loads((tmp_path / "plots" / "summary.json").read_bytes()) == [summary]
    for stem, fig in draw_figures([read_run(tmp_path / "run")]).items():
        for title, pixels in _coloured_pixels_per_panel(fig).items():
            assert pixels > 200, f"{stem}: empty panel {title!r}"
        assert all(ax.get_xlabel() and ax.get_ylabel() and ax.get_title() for ax in fig.axes)


def test_two_runs_overlay(tmp_path: Path, metrics_run: Callable[..., Path]):
    metrics_run(tmp_path / "fixed-batch", seed=1)
    metrics_run(tmp_path / "optimized", seed=2, speed=1.8)
    runs = [read_run(tmp_path / "fixed-batch"), read_run(tmp_path / "optimized")]
    figures = draw_figures(runs)
    for stem, fig in figures.items():
        [legend] = fig.legends
        names = [t.get_text() for t in legend.get_texts()]
        if stem == "step_time":
            assert names == [
                f"{r} {w}" for r in ("fixed-batch", "optimized") for w in ("slowest rank", "mean")
            ]
        else:
            assert names == ["fixed-batch", "optimized"]
        for ax in fig.axes:
            drawn = {line.get_color() for line in ax.get_lines()} | {
                tuple(p.get_facecolor()) for p in ax.patches
            }
            assert len(drawn) >= 2, f"{stem}/{ax.get_title()}: one run missing"
    written, summaries = plot_runs(
        [tmp_path / "fixed-batch", tmp_path / "optimized"], tmp_path / "cmp"
    )
    assert {p.stem for p in written} == FIGURES
    fixed, fast = summaries
    # the generator's faster run: more audio per second, lower loss at its last steps
    assert fast["audio_s_per_s"] > 1.5 * fixed["audio_s_per_s"]
    assert fast["loss_last"] < fixed["loss_last"]
    # at equal wall time (the faster run's end) the faster run's loss is lower still
    assert fast["common_wall_s"] == fixed["common_wall_s"] == pytest.approx(fast["wall_s"])
    assert fast["loss_at_common_wall"] < fixed["loss_at_common_wall"] - 0.5


def test_summary_from_lines(tmp_path: Path, metrics_run: Callable[..., Path]):
    path = metrics_run(tmp_path / "run", steps=30, ranks=2, val_every=10)
    lines = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    steps = [x for x in lines if "kind" not in x]
    s = summarize(read_run(tmp_path / "run"))
    assert (s["steps"], s["ranks"], s["val_points"], s["ignored_lines"]) == (30, 2, 3, 1)
    # wall time: the slowest rank of each step, summed
    wall = sum(max(x["step_time_s"] for x in steps if x["step"] == k) for k in range(30))
    assert s["wall_s"] == pytest.approx(wall)
    audio = sum(x["audio_s"] for x in steps)
    assert s["audio_s_per_s"] == pytest.approx(audio / wall)
    # padding as a ratio of sums: padded positions of a batch = content / (1 - padding)
    positions = sum(x["audio_s"] / (1 - x["audio_padding"]) for x in steps)
    assert s["audio_padding"] == pytest.approx(1 - audio / positions)
    mean = sum(sum(x["step_time_s"] for x in steps if x["step"] == k) / 2 for k in range(30))
    assert s["tail_overhead"] == pytest.approx(wall / mean - 1)
    assert s["same_bucket_share"] == 1.0  # the generator's buckets are synchronised


def test_unsynchronised_buckets(tmp_path: Path, metrics_run: Callable[..., Path]):
    path = metrics_run(tmp_path / "run", steps=200, ranks=2, sync=False, val_every=0)
    steps = [x for x in map(orjson.loads, path.read_bytes().splitlines()) if "kind" not in x]
    s = summarize(read_run(tmp_path / "run"))
    by_step = [[x for x in steps if x["step"] == k] for k in range(200)]
    same = sum(a["bucket"] == b["bucket"] for a, b in by_step)
    assert s["same_bucket_share"] == pytest.approx(same / 200) and 0 < same < 100
    # each rank's work is its padded audio; the share the most-loaded rank adds over the mean
    work = [[x["audio_s"] / (1 - x["audio_padding"]) for x in pair] for pair in by_step]
    expected = sum(max(w) for w in work) / sum(sum(w) / 2 for w in work) - 1
    assert s["load_imbalance"] == pytest.approx(expected) and s["load_imbalance"] > 0.02


def test_resumed_steps_keep_the_later_line_and_nan_loss_is_read(
    tmp_path: Path, metrics_run: Callable[..., Path]
):
    path = metrics_run(tmp_path / "run", steps=10, val_every=0)
    # a resumed run logs step 8 again, with a diverged loss written by Python's json (NaN)
    again = {"step": 8, "rank": 0, "loss": float("nan"), "step_time_s": 9.0, "skipped": True}
    with open(path, "a") as f:
        f.write(json.dumps(again) + "\n\n")
    run = read_run(tmp_path / "run")
    assert len(run.steps) == 10
    assert np.isnan(run.values["loss"][8, 0]) and run.values["step_time_s"][8, 0] == 9.0
    assert summarize(run)["skipped"] == 1


def test_smooth_skips_missing_values():
    y = np.array([1.0, np.nan, 3.0, 5.0])
    assert np.allclose(smooth(y, 3), [1.0, 2.0, 4.0, 4.0])
    assert np.isnan(smooth(np.array([np.nan, np.nan]), 2)).all()
    assert len(smooth(np.arange(4.0), 10)) == 4  # a window longer than the run


def test_run_shorter_than_a_window(tmp_path: Path, metrics_run: Callable[..., Path]):
    metrics_run(tmp_path / "run", steps=3, ranks=1, val_every=0)
    written, [summary] = plot_runs([tmp_path / "run"], tmp_path / "plots")
    assert len(written) == len(FIGURES) - 1  # no validation lines, no validation plot
    assert summary["steps"] == 3 and summary["same_bucket_share"] == 1.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"step": 0, "rank": 0, "loss": 1}\n{nope\n', "metrics.jsonl:2: bad JSON"),
        (b'{"step": 0, "rank": 0}\n[1, 2]\n', "metrics.jsonl:2: not a JSON object"),
        (b'{"step": "zero", "rank": 0}\n', "metrics.jsonl:1: 'step' must be an integer"),
        (b'{"step": 0}\n', "metrics.jsonl:1: 'rank' must be an integer"),
        (b'{"kind": "val", "step": 3, "wer_avg": 10}\n', "no step lines"),
    ],
)
def test_cli_bad_metrics(tmp_path: Path, content: bytes, message: str):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_bytes(content)
    result = CliRunner().invoke(app, ["plot-run", str(tmp_path / "run")])
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli(tmp_path: Path, metrics_run: Callable[..., Path]):
    missing = CliRunner().invoke(app, ["plot-run", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "no such metrics file" in missing.stderr
    metrics_run(tmp_path / "a", seed=1)
    metrics_run(tmp_path / "b", seed=2)
    result = CliRunner().invoke(
        app, ["plot-run", str(tmp_path / "a"), str(tmp_path / "b"), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert [r["run"] for r in report["runs"]] == ["a", "b"]
    assert {Path(p).parent for p in report["plots"]} == {tmp_path / "a" / "plots-compare"}
    table = CliRunner().invoke(app, ["plot-run", str(tmp_path / "a"), "--out", str(tmp_path / "p")])
    assert table.exit_code == 0 and "audio s per wall s" in table.stdout
    assert (tmp_path / "p" / "loss.png").is_file()
