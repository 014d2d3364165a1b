"""Plots of a bucket plan: the bucket grid over the sample's duration x tokens density."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from padless.sampling.plan import BucketPlan


def plot_plan(plan: BucketPlan, durations: np.ndarray, tokens: np.ndarray, out: str | Path) -> Path:
    """Write a PNG: log-density of (duration, tokens) with each bucket's bounds drawn on it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    fig, (ax, ax_occ) = plt.subplots(
        1, 2, figsize=(14, 6), gridspec_kw={"width_ratios": [3, 1.2]}, constrained_layout=True
    )
    top_t = float(np.quantile(tokens, 0.999)) * 1.1 if len(tokens) else 1.0
    top_d = float(plan.duration_edges[-1])
    # Empty cells stay light grey so the bucket outlines read against them too.
    ax.set_facecolor("#ececec")
    *_, image = ax.hist2d(
        durations,
        tokens,
        bins=(200, 200),
        range=((0.0, top_d), (0.0, top_t)),
        norm=LogNorm(),
        cmap="viridis",
        cmin=1,
    )
    fig.colorbar(image, ax=ax, label="sampled examples per cell", pad=0.01)
    for b in plan.buckets:
        lo_t = 0.0 if b.min_tokens is None else float(b.min_tokens)
        hi_t = top_t if b.max_tokens is None or not plan.is_2d else float(b.max_tokens)
        ax.add_patch(
            Rectangle(
                (b.min_duration, lo_t),
                b.max_duration - b.min_duration,
                min(hi_t, top_t) - lo_t,
                fill=False,
                edgecolor="crimson",
                linewidth=0.9,
            )
        )
    tps = plan.filters.tps_max
    if tps is not None:  # examples above the line were dropped by the TPS filter
        ax.plot([0.0, top_d], [0.0, tps * top_d], color="darkorange", linestyle="--", linewidth=1)
        ax.annotate(
            f"TPS filter: {tps:g} tokens/s",
            (min(top_d, 0.9 * top_t / tps), min(0.9 * top_t, 0.9 * tps * top_d)),
            color="darkorange",
            ha="right",
            va="bottom",
        )
        ax.set_ylim(0.0, top_t)
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("output tokens (prompt + text + EOS)")
    pad = plan.expected_padding
    ax.set_title(
        f"{len(plan)} buckets ({plan.num_duration_bins} x {plan.num_subbuckets}, {plan.bins}); "
        f"pad-to-edge bound: audio {pad.get('audio', float('nan')):.1%}, "
        f"tokens {pad.get('token', float('nan')):.1%}"
    )
    shares = [b.sample_duration for b in plan.buckets]
    total = sum(shares) or 1.0
    ax_occ.barh(np.arange(len(plan)), [s / total for s in shares], color="tab:blue")
    ax_occ.set_xlabel("share of sample duration")
    ax_occ.set_ylabel("bucket")
    ax_occ.invert_yaxis()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
