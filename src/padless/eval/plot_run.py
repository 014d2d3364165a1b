"""Training-run report: PNG plots and a summary from ``RUN/metrics.jsonl``, one run or several
overlaid for comparison.

``metrics.jsonl`` has one JSON object per optimizer step per rank (``step``, ``rank``, ``loss``,
``lr``, ``bucket``, ``batch_size``, ``audio_s``, ``audio_padding``, ``token_padding``,
``step_time_s`` (the whole step, data wait included), ``data_wait_s``, ``audio_s_per_s``,
``tokens``, ``peak_mem_mb``; optional ``skipped`` (examples dropped) and ``bad_step`` (update
skipped for a non-finite loss)). Lines with a ``kind`` other than ``train`` are not steps:
``"kind": "val"`` lines, and the lines of ``RUN/validation.jsonl`` if there is one, are
validation results at a step (e.g. ``dev_loss``, ``wer_avg``, ``bleu_avg``) and get their own
plot; other kinds are counted and ignored, and so are unknown keys. A step logged twice by a
rank (a run resumed from a checkpoint older than its last logged step) keeps the later line,
the one the resumed run produced. A malformed line is an error naming its file and line.

Across ranks, per step: the loss and the padding are means; throughput (audio seconds per wall
second) is the sum; the step's wall time is the slowest rank's ``step_time_s``, and wall time is
the cumulative sum of that. The tail-worker effect: under DDP every rank waits for the slowest
at the gradient all-reduce, so the ranks' logged step times end up close, and what shows the
effect is the spread of their work. Each rank's work scales with its padded audio
(``audio_s / (1 - audio_padding)``); ranks in different buckets differ most, which is what
synchronised buckets prevent, so the share of steps with the same bucket on every rank is
plotted beside it.

The figures are drawn on `matplotlib.figure.Figure` objects (the Agg canvas, no pyplot state).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from padless.data.errors import PadlessInputError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

METRICS_FILE = "metrics.jsonl"
VALIDATION_FILE = "validation.jsonl"  # validation lines a training run may write on its own
SUMMARY_FILE = "summary.json"

#: Numeric per-step fields kept as (steps, ranks) arrays; a field a run lacks is all NaN.
STEP_FIELDS = (
    "loss",
    "lr",
    "batch_size",
    "audio_s",
    "audio_padding",
    "token_padding",
    "step_time_s",
    "data_wait_s",
    "audio_s_per_s",
    "tokens",
    "peak_mem_mb",
    "skipped",
    "bad_step",
)
#: Validation fields plotted when ``kind: val`` lines carry them, with their axis labels
#: (`padless.eval.evaluate.EvalResult.metrics` names the scores).
VAL_FIELDS = {
    "dev_loss": "dev loss",
    "loss": "loss",
    "wer_avg": "WER %, mean over languages",
    "bleu_avg": "BLEU, mean over directions",
}


class MetricsError(PadlessInputError):
    """A ``metrics.jsonl`` line that is not a metrics record."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}", reason)


@dataclass(frozen=True)
class RunMetrics:
    """One run's metrics as (steps, ranks) arrays, NaN where a rank logged no value."""

    name: str  # the label in legends: the run folder's name
    path: Path  # the metrics.jsonl read
    steps: np.ndarray  # (S,) int64, sorted, unique
    values: dict[str, np.ndarray]  # field -> (S, R) float64
    bucket_labels: list[str]  # bucket names ("7", or "3,1" for a 2D bucket); values["bucket"]
    # holds indices into this list
    val: list[dict[str, Any]] = field(default_factory=list)  # "kind": "val" lines
    other_lines: int = 0  # lines of other kinds, ignored

    @property
    def ranks(self) -> int:
        return self.values["loss"].shape[1]

    def per_step(self, name: str, how: str) -> np.ndarray:
        """``name`` reduced over ranks per step: ``mean``, ``max`` or ``sum`` (NaN if no rank
        logged it)."""
        data = self.values[name]
        logged = np.isfinite(data).any(axis=1)
        out = np.full(len(self.steps), np.nan)
        if logged.any():
            rows = data[logged]
            if how == "mean":
                out[logged] = np.nanmean(rows, axis=1)
            elif how == "max":
                out[logged] = np.nanmax(rows, axis=1)
            elif how == "sum":
                out[logged] = np.nansum(rows, axis=1)
            else:
                raise ValueError(f"unknown reduction {how!r}")
        return out

    def padded_audio_s(self) -> np.ndarray:
        """(S, R) seconds of encoder input per rank and step, padding included (what the
        rank's forward and backward cost scales with): ``audio_s / (1 - audio_padding)``."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.values["audio_s"] / (1 - self.values["audio_padding"])

    def same_bucket(self) -> np.ndarray:
        """(S,) 1.0 where every rank that logged the step drew the same bucket, else 0.0 (NaN
        without buckets)."""
        ids = self.values["bucket"]
        out = np.full(len(self.steps), np.nan)
        logged = np.isfinite(ids).any(axis=1)
        out[logged] = np.nanmax(ids[logged], axis=1) == np.nanmin(ids[logged], axis=1)
        return out

    def wall_s(self) -> np.ndarray:
        """(S,) seconds since the first step, at the end of each step (slowest rank per step)."""
        return np.cumsum(np.nan_to_num(self.per_step("step_time_s", "max")))


def read_run(run: str | os.PathLike[str], name: str | None = None) -> RunMetrics:
    """Parse ``RUN/metrics.jsonl`` (or a metrics file given directly)."""
    path = Path(run)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such metrics file")
    label = name or (path.parent.name if path.name == METRICS_FILE else path.stem)
    records: list[tuple[int, int, dict[str, Any]]] = []  # (step, rank, line)
    val: list[dict[str, Any]] = []
    other = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            row = _parse(raw, path, number)
            kind = row.get("kind", "train")
            if kind == "val":
                _index(row, "step", path, number)
                val.append(row)
                continue
            if kind != "train":
                other += 1
                continue
            records.append(
                (_index(row, "step", path, number), _index(row, "rank", path, number), row)
            )
    if not records:
        raise PadlessInputError(f"{path}: no step lines (one per step per rank)", "no steps")
    steps = np.unique(np.fromiter((s for s, _, _ in records), dtype=np.int64))
    ranks = 1 + max(r for _, r, _ in records)
    values = {key: np.full((len(steps), ranks), np.nan) for key in STEP_FIELDS}
    rows = np.searchsorted(steps, [s for s, _, _ in records])
    values["bucket"] = np.full((len(steps), ranks), np.nan)
    bucket_ids: dict[str, int] = {}
    for row_index, (_, rank, row) in zip(rows, records, strict=True):
        for key in STEP_FIELDS:
            value = _number(row.get(key))
            if value is not None:
                values[key][row_index, rank] = value  # later lines overwrite: resumed steps
        if row.get("bucket") is not None:
            bucket = _bucket_label(row["bucket"])
            values["bucket"][row_index, rank] = bucket_ids.setdefault(bucket, len(bucket_ids))
    val.extend(_read_validation(path.parent / VALIDATION_FILE))
    val.sort(key=lambda r: int(r["step"]))
    return RunMetrics(label, path, steps, values, list(bucket_ids), val, other)


def _read_validation(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if raw.strip():
                row = _parse(raw, path, number)
                _index(row, "step", path, number)
                rows.append(row)
    return rows


def _parse(raw: bytes, path: Path, number: int) -> dict[str, Any]:
    try:
        row = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:  # Python's json writes NaN / Infinity for a diverged loss; orjson rejects them
            row = json.loads(raw)
        except ValueError as err:
            raise MetricsError(path, number, f"bad JSON ({err})") from None
    if not isinstance(row, dict):
        raise MetricsError(path, number, "not a JSON object")
    return row


def _index(row: dict[str, Any], key: str, path: Path, number: int) -> int:
    value = row.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MetricsError(path, number, f"{key!r} must be an integer >= 0, got {value!r}")
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def _bucket_label(bucket: Any) -> str:
    """``3`` -> "3"; a 2D bucket ``[3, 1]`` -> "3,1"."""
    if isinstance(bucket, list | tuple):
        return ",".join(str(b) for b in bucket)
    return str(bucket)


def _bucket_order(label: str) -> tuple[int, tuple[Any, ...]]:
    parts = label.split(",")
    if all(p.lstrip("-").isdigit() for p in parts):
        return (0, tuple(int(p) for p in parts))
    return (1, (label,))


# ---------------------------------------------------------------------------------- summary


def summarize(run: RunMetrics) -> dict[str, Any]:
    """Totals of one run: steps, wall time, throughput, padding (ratios of sums), tail cost."""
    wall = float(run.wall_s()[-1]) if len(run.steps) else 0.0
    audio = run.values["audio_s"]
    loss = run.per_step("loss", "mean")
    finite = loss[np.isfinite(loss)]
    tail_n = max(1, len(finite) // 10)
    step_max = run.per_step("step_time_s", "max")
    step_mean = run.per_step("step_time_s", "mean")
    both = np.isfinite(step_max) & np.isfinite(step_mean)
    out: dict[str, Any] = {
        "run": run.name,
        "metrics": str(run.path),
        "steps": len(run.steps),
        "first_step": int(run.steps[0]),
        "last_step": int(run.steps[-1]),
        "ranks": run.ranks,
        "wall_s": wall,
        "loss_first": float(finite[:tail_n].mean()) if len(finite) else None,
        "loss_last": float(finite[-tail_n:].mean()) if len(finite) else None,
        "audio_h": float(np.nansum(audio)) / 3600,
        "audio_s_per_s": float(np.nansum(audio)) / wall if wall > 0 else None,
        "audio_padding": _padding_of_sums(audio, run.values["audio_padding"]),
        "token_padding": _padding_of_sums(run.values["tokens"], run.values["token_padding"]),
        # sum over steps of (slowest - mean rank) / sum of mean: time lost waiting for the tail
        "tail_overhead": (
            float(step_max[both].sum() / step_mean[both].sum() - 1) if both.any() else None
        ),
        # the same over each step's padded audio: the work the other ranks wait for
        "load_imbalance": _imbalance(run.padded_audio_s()),
        "same_bucket_share": (float(np.nanmean(run.same_bucket())) if run.bucket_labels else None),
        "data_wait_share": (
            float(np.nansum(run.per_step("data_wait_s", "mean")) / wall) if wall > 0 else None
        ),
        "skipped": int(np.nansum(run.values["skipped"])),
        "bad_steps": int(np.nansum(run.per_step("bad_step", "max"))),
        "val_points": len(run.val),
        "ignored_lines": run.other_lines,
    }
    return out


def _imbalance(work: np.ndarray) -> float | None:
    """sum over steps of the most-loaded rank's work / sum of the mean rank's, minus 1."""
    has = np.isfinite(work).any(axis=1)
    if not has.any():
        return None
    rows = work[has]
    return float(np.nanmax(rows, axis=1).sum() / np.nanmean(rows, axis=1).sum() - 1)


def loss_near(run: RunMetrics, wall_s: float, share: float = 0.1) -> float | None:
    """Mean loss (over ranks, then steps) of the steps ending in the last ``share`` of the first
    ``wall_s`` seconds: runs compared at equal wall time."""
    wall = run.wall_s()
    loss = run.per_step("loss", "mean")
    window = (wall > (1 - share) * wall_s) & (wall <= wall_s) & np.isfinite(loss)
    return float(loss[window].mean()) if window.any() else None


def _padding_of_sums(content: np.ndarray, padding: np.ndarray) -> float | None:
    """Overall padding ratio from per-batch content and padding ratio: a batch with content c and
    padding p has c / (1 - p) positions, so the run's ratio is 1 - sum(c) / sum(c / (1 - p))."""
    ok = np.isfinite(content) & np.isfinite(padding) & (padding < 1)
    if not ok.any():
        return None
    c, p = content[ok], padding[ok]
    positions = (c / (1 - p)).sum()
    return float(1 - c.sum() / positions) if positions > 0 else None


# ---------------------------------------------------------------------------------- figures


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average that skips NaNs (NaN where the window holds no value)."""
    window = min(window, len(values))  # np.convolve's "same" output is as long as the longer
    if window <= 1:
        return values.astype(float)
    finite = np.isfinite(values)
    kernel = np.ones(window)
    sums = np.convolve(np.where(finite, values, 0.0), kernel, mode="same")
    counts = np.convolve(finite.astype(float), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


#: Points per drawn line at most: more are invisible at the figure's width, slow to draw, and
#: turn a dashed line solid.
MAX_POINTS = 1000


def thin(x: np.ndarray, y: np.ndarray, peak: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """At most about `MAX_POINTS` points of a (smoothed) line: every k-th point, or with ``peak``
    the largest value of each run of k (so a memory peak is never dropped)."""
    k = -(-len(x) // MAX_POINTS)
    if k <= 1:
        return x, y
    if not peak:
        return x[::k], y[::k]
    n = len(y) // k * k
    chunks = y[:n].reshape(-1, k)
    has = np.isfinite(chunks).any(axis=1)
    out = np.full(len(chunks), np.nan)
    out[has] = np.nanmax(chunks[has], axis=1)
    return x[:n:k], out


def _window(runs: Sequence[RunMetrics]) -> int:
    return max(1, max(len(r.steps) for r in runs) // 50)


def _time_unit(runs: Sequence[RunMetrics]) -> tuple[str, float]:
    longest = max(float(r.wall_s()[-1]) for r in runs)
    if longest < 180:
        return "s", 1.0
    if longest < 3 * 3600:
        return "min", 60.0
    return "h", 3600.0


def draw_figures(runs: Sequence[RunMetrics]) -> dict[str, Figure]:
    """Figures by file stem: loss, throughput, padding, batch_size, step_time, and validation
    when any run has ``kind: val`` lines."""
    from matplotlib.figure import Figure

    if not runs:
        raise ValueError("no runs to plot")
    colors = [f"C{i % 10}" for i in range(len(runs))]
    window = _window(runs)
    unit, scale = _time_unit(runs)
    figures: dict[str, Figure] = {}

    def new(stem: str, panels: int, title: str, rows: int = 1) -> list[Axes]:
        cols = -(-panels // rows)
        fig = Figure(figsize=(5.2 * cols, 0.5 + 3.7 * rows), layout="constrained")
        figures[stem] = fig
        axes = list(np.atleast_1d(fig.subplots(rows, cols)).ravel())
        names = runs[0].name if len(runs) == 1 else f"{len(runs)} runs"
        fig.suptitle(f"{title} — {names}")
        for ax in axes:
            ax.grid(True, color="0.9")
        return axes

    smooth_note = f" (mean of {window} steps)" if window > 1 else ""

    # loss against optimizer steps and against wall time
    a, b = new("loss", 2, "training loss")
    for run, c in zip(runs, colors, strict=True):
        loss = run.per_step("loss", "mean")
        for ax, x in ((a, run.steps), (b, run.wall_s() / scale)):
            if window > 1:
                ax.plot(*thin(x, loss), color=c, alpha=0.2, linewidth=0.8)
            ax.plot(*thin(x, smooth(loss, window)), color=c, label=run.name)
    a.set(xlabel="step", ylabel=f"loss, mean over ranks{smooth_note}", title="loss vs step")
    b.set(xlabel=f"wall time ({unit}, sum of slowest-rank step times)", ylabel="loss")
    b.set_title("loss vs wall time")

    # throughput, audio processed against wall time, peak memory
    a, b, m = new("throughput", 3, "throughput")
    for run, c in zip(runs, colors, strict=True):
        rate = run.per_step("audio_s_per_s", "sum")
        a.plot(*thin(run.steps, smooth(rate, window)), color=c, label=run.name)
        audio_h = np.cumsum(np.nan_to_num(run.per_step("audio_s", "sum"))) / 3600
        b.plot(*thin(run.wall_s() / scale, audio_h), color=c, label=run.name)
        memory = run.per_step("peak_mem_mb", "max")
        m.plot(*thin(run.steps, memory, peak=True), color=c, label=run.name)
    a.set(xlabel="step", ylabel=f"audio s per wall s, sum over ranks{smooth_note}")
    a.set_title("throughput")
    b.set(xlabel=f"wall time ({unit})", ylabel="audio processed (h)", title="audio vs wall time")
    m.set(xlabel="step", ylabel="MB, max over ranks", title="peak memory")

    # padding shares of the encoder (audio) and decoder (token) positions
    axes = new("padding", 2, "padding")
    for ax, key, what in zip(
        axes, ("audio_padding", "token_padding"), ("audio", "token"), strict=True
    ):
        for run, c in zip(runs, colors, strict=True):
            share = 100 * run.per_step(key, "mean")
            ax.plot(*thin(run.steps, smooth(share, window)), color=c, label=run.name)
        ax.set(xlabel="step", ylabel=f"% of {what} positions{smooth_note}")
        ax.set_title(f"{what} padding")
        ax.set_ylim(bottom=0)

    # batch size per bucket and how often each bucket was drawn (per rank and step)
    a, b = new("batch_size", 2, "batches per bucket")
    labels = sorted({label for r in runs for label in r.bucket_labels}, key=_bucket_order)
    position = {label: i for i, label in enumerate(labels)}
    width = 0.8 / len(runs)
    for i, (run, c) in enumerate(zip(runs, colors, strict=True)):
        ids, sizes = run.values["bucket"].ravel(), run.values["batch_size"].ravel()
        ok = np.isfinite(ids) & np.isfinite(sizes)
        ids, sizes = ids[ok].astype(np.int64), sizes[ok]
        counts = np.bincount(ids, minlength=len(run.bucket_labels))
        used = np.flatnonzero(counts)
        mean_size = np.bincount(ids, weights=sizes, minlength=len(counts))[used] / counts[used]
        xs = np.array([position[run.bucket_labels[j]] for j in used])
        offset = (i - (len(runs) - 1) / 2) * width
        a.bar(xs + offset, mean_size, width=width, color=c, label=run.name)
        b.bar(xs + offset, 100 * counts[used] / counts.sum(), width=width, color=c, label=run.name)
    for ax in (a, b):
        ax.set_xticks(range(len(labels)), labels, rotation=90 if len(labels) > 12 else 0)
        ax.set_xlabel("bucket" + (" (duration bin, token bin)" if "," in "".join(labels) else ""))
    a.set(ylabel="examples per batch (mean)", title="batch size per bucket")
    b.set(ylabel="% of batches", title="bucket use")

    # The tail-worker effect. Under DDP every rank waits for the slowest at the gradient
    # all-reduce, so logged step times end up close; what differs is each rank's work, which
    # scales with its padded audio. Ranks in different buckets have very different work.
    a, b, e, d = new("step_time", 4, "ranks: step time, work balance, data wait", rows=2)
    for run, c in zip(runs, colors, strict=True):
        work = run.padded_audio_s()
        work_mean = np.full(len(run.steps), np.nan)
        work_max = np.full(len(run.steps), np.nan)
        has = np.isfinite(work).any(axis=1)
        work_mean[has] = np.nanmean(work[has], axis=1)
        work_max[has] = np.nanmax(work[has], axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            imbalance = 100 * (work_max / work_mean - 1)
        b.plot(*thin(run.steps, smooth(imbalance, window)), color=c, label=run.name)
        same = 100 * run.same_bucket()
        e.plot(*thin(run.steps, smooth(same, max(window, 10))), color=c, label=run.name)
        slowest = run.per_step("step_time_s", "max")
        mean = run.per_step("step_time_s", "mean")
        a.plot(*thin(run.steps, smooth(slowest, window)), color=c, label=f"{run.name} slowest rank")
        a.plot(
            *thin(run.steps, smooth(mean, window)),
            color=c,
            linestyle="--",
            label=f"{run.name} mean",
        )
        wait = 1000 * run.per_step("data_wait_s", "mean")
        d.plot(*thin(run.steps, smooth(wait, window)), color=c, label=run.name)
    a.set(xlabel="step", ylabel=f"step time (s){smooth_note}", title="slowest rank vs mean")
    b.set(xlabel="step", ylabel=f"% most-loaded rank over mean{smooth_note}")
    b.set_title("work imbalance (padded audio per rank)")
    e.set(xlabel="step", ylabel=f"% of steps (mean of {max(window, 10)} steps)")
    e.set_title("same bucket on every rank")
    e.set_ylim(-3, 103)
    d.set(xlabel="step", ylabel="ms, mean over ranks", title="data wait")

    val_lines = [v for r in runs for v in r.val]
    present = [k for k in VAL_FIELDS if any(_number(v.get(k)) is not None for v in val_lines)]
    if present:
        axes = new("validation", len(present), "validation")
        for ax, key in zip(axes, present, strict=True):
            for run, c in zip(runs, colors, strict=True):
                points = [(v["step"], _number(v.get(key))) for v in run.val if "step" in v]
                points = [(s, y) for s, y in points if y is not None]
                if points:
                    xs_, ys_ = zip(*points, strict=True)
                    ax.plot(xs_, ys_, color=c, marker="o", label=run.name)
            ax.set(xlabel="step", ylabel=VAL_FIELDS[key], title=f"validation {key}")

    # One legend per figure, below the panels (inside a panel it hides data). A single run needs
    # none, except on the step-time figure, whose line styles tell slowest from mean rank.
    for stem, fig in figures.items():
        if len(runs) > 1 or stem == "step_time":
            handles, names = fig.axes[0].get_legend_handles_labels()
            fig.legend(handles, names, loc="outside lower center", ncols=min(len(names), 4))
    return figures


def plot_runs(
    runs: Iterable[str | os.PathLike[str]], out: str | os.PathLike[str]
) -> tuple[list[Path], list[dict[str, Any]]]:
    """Read the runs, write one PNG per figure and ``summary.json`` into ``out``; returns the
    PNG paths and the per-run summaries."""
    paths = [Path(r) for r in runs]
    names = _labels(paths)
    metrics = [read_run(p, n) for p, n in zip(paths, names, strict=True)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, fig in draw_figures(metrics).items():
        target = out / f"{stem}.png"
        fig.savefig(target, dpi=110)
        written.append(target)
    summaries = [summarize(m) for m in metrics]
    if len(metrics) > 1:
        common = min(float(m.wall_s()[-1]) for m in metrics)
        for summary, run in zip(summaries, metrics, strict=True):
            summary["common_wall_s"] = common
            summary["loss_at_common_wall"] = loss_near(run, common)
    (out / SUMMARY_FILE).write_bytes(orjson.dumps(summaries, option=orjson.OPT_INDENT_2) + b"\n")
    return written, summaries


def _labels(paths: Sequence[Path]) -> list[str]:
    """Legend labels: run folder names, with their parent when two runs share a name."""
    names = [(p.parent.name if p.name == METRICS_FILE else p.name) for p in paths]
    if len(set(names)) == len(names):
        return names
    resolved = [p.resolve() for p in paths]
    names = [
        f"{(r.parent if r.name == METRICS_FILE else r).parent.name}/{n}"
        for r, n in zip(resolved, names, strict=True)
    ]
    return names if len(set(names)) == len(names) else [f"{i + 1}:{n}" for i, n in enumerate(names)]
