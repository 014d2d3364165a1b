"""The demo report's own figures: padding and batch size against the baseline, scores, RTFx.
(The bucket plan is drawn by `padless.sampling.plot`, the training curves by
`padless.eval.plot_run`.)"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

OURS, BASE = "#1f77b4", "#bbbbbb"
MEAN = "#0b3c61"  # the mean of the bars beside it, darker


def _figure(width: float, panels: int) -> tuple[Figure, list[Axes]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=(width, 4.2), constrained_layout=True)
    return fig, list(axes) if panels > 1 else [axes]


def _save(fig: Figure, out: Path) -> Path:
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _label_bars(ax: Axes, bars: Any, fmt: str) -> None:
    for bar in bars:
        height = bar.get_height()
        ax.annotate(
            fmt.format(height),
            (bar.get_x() + bar.get_width() / 2, height),
            ha="center",
            va="bottom",
            fontsize=9,
            xytext=(0, 2),
            textcoords="offset points",
        )


def plot_padding(optimized: dict[str, Any], baseline: dict[str, Any], out: Path) -> Path:
    """Audio and token padding (%) and mean batch size, optimized beside the baseline."""
    import numpy as np

    fig, (pad, size) = _figure(10, 2)
    x = np.arange(2)
    for offset, scheme, color, name in (
        (-0.2, optimized, OURS, "optimized"),
        (0.2, baseline, BASE, "random fixed-size batches"),
    ):
        values = [100 * scheme["audio_padding"], 100 * scheme["token_padding"]]
        _label_bars(pad, pad.bar(x + offset, values, 0.4, color=color, label=name), "{:.1f}%")
    pad.set_xticks(x, ["audio", "output tokens"])
    pad.set_ylabel("padding (% of batch positions)")
    pad.set_title("padding over one epoch of the training set")
    pad.legend(loc="upper center", ncols=2)
    pad.margins(y=0.3)
    names = ["optimized", "baseline"]
    values = [optimized["mean_batch_size"], baseline["mean_batch_size"]]
    _label_bars(size, size.bar(names, values, 0.6, color=[OURS, BASE]), "{:.1f}")
    size.set_ylabel("examples per batch (mean)")
    seconds = f"{optimized['mean_batch_seconds']:.1f} s vs {baseline['mean_batch_seconds']:.1f} s"
    size.set_title(f"batch size (audio per batch: {seconds})")
    size.margins(y=0.15)
    return _save(fig, out)


def plot_scores(
    wer: dict[str, float], bleu: dict[str, float], targets: tuple[float, float], out: Path
) -> Path:
    """WER per ASR language and BLEU per AST direction, then their mean (the bar a target is
    set for), with the acceptance targets drawn."""
    fig, axes = _figure(12, 2)
    for ax, scores, name, target, better in (
        (axes[0], wer, "WER (%)", targets[0], "lower is better"),
        (axes[1], bleu, "BLEU", targets[1], "higher is better"),
    ):
        keys = sorted(scores)
        if keys:
            values = [scores[k] for k in keys]
            names, colors = [*keys, "mean"], [OURS] * len(keys) + [MEAN]
            bars = ax.bar(names, [*values, sum(values) / len(values)], color=colors)
            _label_bars(ax, bars, "{:.1f}")
            ax.tick_params(axis="x", rotation=45 if len(names) > 7 else 0)
        else:
            ax.text(0.5, 0.5, "no examples", ha="center", va="center", transform=ax.transAxes)
        ax.axhline(
            target,
            color="crimson",
            linestyle="--",
            linewidth=1,
            label=f"target for the mean: {target:g}",
        )
        ax.set_ylabel(name)
        ax.set_title(f"{name} on the test split ({better})")
        ax.legend(loc="upper right")
        ax.margins(y=0.15)
    return _save(fig, out)


def plot_rtfx(results: dict[str, Any], out: Path) -> Path:
    """RTFx (audio seconds per wall second) of KV-cache decoding and the recompute reference."""
    fig, (ax,) = _figure(6, 1)
    names = ["KV cache", "recompute"]
    values = [results["rtfx_kv"], results["rtfx_recompute"]]
    _label_bars(ax, ax.bar(names, values, 0.6, color=[OURS, BASE]), "{:.0f}")
    ax.set_ylabel("RTFx (audio s per wall s)")
    ax.set_title(
        f"greedy decoding, {results['utterances']} test utterances ({results['audio_s']:.0f} s)"
    )
    ax.margins(y=0.15)
    return _save(fig, out)
