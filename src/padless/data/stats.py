"""Manifest statistics: counts, hours, duration and output-rate percentiles per language and task,
and the paper's Figure 3 (output tokens per second by 2 s duration bin).

The output rate is what 2D bucketing and TPS filters act on: decoder tokens per second of audio,
with tokens = prompt + text + EOS as the tokenizer counts them (`CanaryTokenizer.num_tokens`).
Without a tokenizer the manifest's ``num_tokens`` is used when every example carries one;
otherwise characters and words per second stand in, and the report says so.

Examples stream through in chunks: memory holds a few numbers per example, not the examples, so
a manifest of millions of lines costs tens of MB.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from padless.data.errors import PadlessInputError
from padless.data.example import Example

if TYPE_CHECKING:
    from padless.data.tokenizer import CanaryTokenizer

RateUnit = Literal["tokens/s", "chars/s"]

_CHUNK = 50_000  # examples tokenized per batch call


@dataclass(frozen=True)
class StatsConfig:
    """What `manifest_stats` summarises and how `plot_stats` draws it."""

    percentiles: tuple[float, ...] = (5.0, 50.0, 95.0, 99.0)
    """Percentiles reported for durations and rates (besides min, mean and max)."""
    bin_seconds: float = 2.0
    """Width of the duration bins of the rate box plot (the paper's Figure 3 uses 2 s)."""
    max_plot_seconds: float = 40.0
    """Right edge of both plots; longer utterances are counted in the title, not drawn."""
    histogram_bin_seconds: float = 0.5
    """Width of the duration histogram's bins."""


@dataclass(frozen=True)
class Distribution:
    """Summary of one quantity over a group of examples."""

    min: float
    mean: float
    max: float
    percentiles: dict[float, float]  # percentile (e.g. 50.0) -> value

    @classmethod
    def of(cls, values: np.ndarray, percentiles: Sequence[float]) -> Distribution | None:
        if values.size == 0:
            return None
        points = np.percentile(values, percentiles) if percentiles else []
        return cls(
            min=float(values.min()),
            mean=float(values.mean()),
            max=float(values.max()),
            percentiles={float(p): float(v) for p, v in zip(percentiles, points, strict=True)},
        )


@dataclass(frozen=True)
class GroupStats:
    """Statistics of one language/task direction (or of everything: name ``"all"``)."""

    name: str
    count: int
    hours: float
    duration: Distribution  # seconds
    rate: Distribution | None  # in ManifestStats.rate_unit; None if no example has one
    words_per_second: Distribution | None  # only when rate_unit is chars/s
    without_rate: int  # examples left out of the rate statistics (see ManifestStats.notes)


@dataclass(frozen=True)
class ManifestStats:
    """What `manifest_stats` found. ``durations``/``rates`` hold one value per example (rates
    NaN where there is no text), in reading order, for plots."""

    sources: tuple[str, ...]
    rate_unit: RateUnit
    rate_source: str  # where the token counts come from, in words
    notes: tuple[str, ...]  # examples left out of the rate statistics, and why
    overall: GroupStats
    groups: tuple[GroupStats, ...]
    durations: np.ndarray = field(repr=False)  # (N,) seconds
    rates: np.ndarray = field(repr=False)  # (N,) rate_unit, NaN without text
    source_langs: np.ndarray = field(repr=False)  # (N,) str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of everything but the per-example arrays."""

        def dist(d: Distribution | None) -> dict[str, Any] | None:
            if d is None:
                return None
            out: dict[str, Any] = {"min": d.min, "mean": d.mean, "max": d.max}
            out.update({f"p{p:g}": v for p, v in d.percentiles.items()})
            return out

        def group(g: GroupStats) -> dict[str, Any]:
            return {
                "name": g.name,
                "count": g.count,
                "hours": g.hours,
                "duration": dist(g.duration),
                "rate": dist(g.rate),
                "words_per_second": dist(g.words_per_second),
                "without_rate": g.without_rate,
            }

        return {
            "sources": list(self.sources),
            "rate_unit": self.rate_unit,
            "rate_source": self.rate_source,
            "notes": list(self.notes),
            "overall": group(self.overall),
            "groups": [group(g) for g in self.groups],
        }


def direction_of(example: Example) -> str:
    """Group label of an example: ``"en asr"``, ``"de->en ast"`` (``?`` for a missing language)."""
    src = example.source_lang or "?"
    if example.task == "asr":
        return f"{src} asr"
    return f"{src}->{example.target_lang or '?'} ast"


def manifest_stats(
    examples: Iterable[Example],
    sources: Sequence[str] = (),
    tokenizer: CanaryTokenizer | None = None,
    config: StatsConfig = StatsConfig(),
) -> ManifestStats:
    """Summarise ``examples`` (streamed once). ``sources`` names where they came from.

    Token counts: ``tokenizer`` if given (prompt + text + EOS, cached into each example), else
    every example's ``num_tokens``; if some example with text lacks it, characters per second
    (and words per second) replace tokens per second. Examples without text, or (with a
    tokenizer) in a language it does not cover, are left out of the rate statistics and counted.
    """
    languages = frozenset(tokenizer.languages) if tokenizer is not None else None
    durations, tokens, chars, words = [], [], [], []
    labels: list[str] = []
    langs: list[str] = []
    uncovered: dict[str, int] = {}  # language -> examples the tokenizer cannot count
    all_counted = True  # every example with text carries num_tokens
    for chunk in _chunks(examples, _CHUNK):
        durations.append(np.fromiter((e.duration for e in chunk), np.float64, len(chunk)))
        texts = [e.text for e in chunk]
        chars.append(np.array([np.nan if t is None else len(t) for t in texts]))
        words.append(np.array([np.nan if t is None else len(t.split()) for t in texts]))
        labels.extend(direction_of(e) for e in chunk)
        langs.extend(e.source_lang or "?" for e in chunk)
        if languages is not None and tokenizer is not None:
            countable = []
            for e in chunk:
                lang = e.target_lang or e.source_lang or "?"
                if e.text is None:
                    continue
                if lang in languages:
                    countable.append(e)
                else:
                    uncovered[lang] = uncovered.get(lang, 0) + 1
            tokenizer.num_tokens_batch(countable)
            tokens.append(
                np.array([np.nan if e.num_tokens is None else e.num_tokens for e in chunk])
            )
        else:
            counted = [e.num_tokens for e in chunk]
            all_counted = all_counted and all(
                n is not None for n, t in zip(counted, texts, strict=True) if t is not None
            )
            tokens.append(np.array([np.nan if n is None else n for n in counted], dtype=np.float64))

    duration = _concat(durations)
    if not duration.size:
        where = ", ".join(sources) or "the input"
        raise PadlessInputError(f"no examples in {where}", "no examples")
    notes: list[str] = []
    word_rate = None
    if tokenizer is not None:
        unit: RateUnit = "tokens/s"
        source = f"tokenizer ({', '.join(tokenizer.languages)}): prompt + text + EOS"
        rate = _concat(tokens) / duration
        for lang, n in sorted(uncovered.items()):
            notes.append(f"{n:,} examples in {lang!r}, a language the tokenizer lacks: no tokens")
    elif all_counted and duration.size and not np.isnan(_concat(tokens)).all():
        unit, source = "tokens/s", "the manifests' num_tokens"
        rate = _concat(tokens) / duration
    else:
        unit = "chars/s"
        source = "characters of the text (no tokenizer given, and no num_tokens in the manifests)"
        rate = _concat(chars) / duration
        word_rate = _concat(words) / duration
    no_text = int(sum(np.isnan(c).sum() for c in chars))
    if no_text:
        notes.insert(0, f"{no_text:,} examples without text: no output rate")

    label_array = np.array(labels, dtype=object)
    groups = tuple(
        _group(name, label_array == name, duration, rate, word_rate, config)
        for name in sorted(set(labels))
    )
    everything = np.ones(duration.size, dtype=bool)
    return ManifestStats(
        sources=tuple(sources),
        rate_unit=unit,
        rate_source=source,
        notes=tuple(notes),
        overall=_group("all", everything, duration, rate, word_rate, config),
        groups=groups,
        durations=duration,
        rates=rate,
        source_langs=np.array(langs, dtype=object),
    )


def _group(
    name: str,
    mask: np.ndarray,
    duration: np.ndarray,
    rate: np.ndarray,
    word_rate: np.ndarray | None,
    config: StatsConfig,
) -> GroupStats:
    d, r = duration[mask], rate[mask]
    with_text = ~np.isnan(r)
    dist = Distribution.of(d, config.percentiles)
    if dist is None:
        raise ValueError("no examples to summarise")
    words = None
    if word_rate is not None:
        words = Distribution.of(word_rate[mask][with_text], config.percentiles)
    return GroupStats(
        name=name,
        count=int(d.size),
        hours=float(d.sum() / 3600),
        duration=dist,
        rate=Distribution.of(r[with_text], config.percentiles),
        words_per_second=words,
        without_rate=int((~with_text).sum()),
    )


def _chunks(examples: Iterable[Example], size: int) -> Iterator[list[Example]]:
    iterator = iter(examples)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0)


def plot_stats(stats: ManifestStats, path: str | Path, config: StatsConfig = StatsConfig()) -> Path:
    """Write the duration histogram and the output rate per duration bin (box plots, the
    paper's Figure 3) side by side into an image file (PNG, SVG, PDF by suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    width = config.bin_seconds
    longest = float(stats.durations.max()) if stats.durations.size else width
    limit = min(config.max_plot_seconds, width * math.ceil(longest / width))
    shown = stats.durations <= limit
    fig, (hist_ax, box_ax) = plt.subplots(1, 2, figsize=(14, 5.2), width_ratios=(1, 1.35))

    # Duration histogram, stacked by source language.
    edges = np.arange(0.0, limit + config.histogram_bin_seconds, config.histogram_bin_seconds)
    langs = sorted(set(stats.source_langs.tolist()))
    per_lang = [stats.durations[shown & (stats.source_langs == lang)] for lang in langs]
    hist_ax.hist(per_lang, bins=edges, stacked=True, label=langs, edgecolor="none")
    hist_ax.set_xlabel("duration (s)")
    hist_ax.set_ylabel(f"utterances per {config.histogram_bin_seconds:g} s bin")
    hist_ax.set_xlim(0, limit)
    hist_ax.legend(title="source language", fontsize="small")
    hist_ax.grid(axis="y", alpha=0.3)
    hist_ax.set_title("Duration distribution")

    # Output rate per duration bin: the rate's spread is what a 2D bucket must absorb.
    bins = np.arange(0.0, limit, width)
    has_rate = shown & ~np.isnan(stats.rates)
    index = np.minimum((stats.durations[has_rate] // width).astype(int), len(bins) - 1)
    rates = stats.rates[has_rate]
    groups = [rates[index == i] for i in range(len(bins))]
    filled = [i for i, g in enumerate(groups) if g.size]
    if filled:
        box_ax.boxplot(
            [groups[i] for i in filled],
            positions=[bins[i] + width / 2 for i in filled],
            widths=width * 0.7,
            whis=(5, 95),
            showfliers=True,
            flierprops={"markersize": 1.5, "alpha": 0.3, "markeredgecolor": "tab:gray"},
            medianprops={"color": "tab:red"},
            manage_ticks=False,
        )
        top = max(float(np.percentile(g, 99.5)) for g in (groups[i] for i in filled))
        box_ax.set_ylim(0, top * 1.12)
        above = matplotlib.transforms.blended_transform_factory(box_ax.transData, box_ax.transAxes)
        for i in filled:  # utterances per bin, in a row along the top of the frame
            box_ax.text(
                bins[i] + width / 2, 0.985, f"{groups[i].size:,}", transform=above,
                ha="center", va="top", fontsize=6, color="dimgray",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5},
            )  # fmt: skip
    box_ax.set_xticks(np.append(bins, limit))
    box_ax.set_xlim(0, limit)
    box_ax.set_xlabel(f"duration (s), {width:g} s bins (numbers at the top: utterances per bin)")
    box_ax.set_ylabel(stats.rate_unit.replace("/s", " per second"))
    box_ax.grid(axis="y", alpha=0.3)
    box_ax.set_title(
        f"Output rate by duration ({stats.rate_unit}; boxes: quartiles, whiskers: 5-95%)"
    )

    overall = stats.overall
    title = (
        f"{overall.count:,} utterances, {overall.hours:,.1f} h, "
        f"{len(stats.groups)} language/task directions"
    )
    hidden = int((~shown).sum())
    if hidden:
        title += f" ({hidden:,} longer than {limit:g} s not drawn)"
    names = ", ".join("/".join(Path(s).parts[-2:]) for s in stats.sources[:4])
    if len(stats.sources) > 4:
        names += f" and {len(stats.sources) - 4} more"
    fig.suptitle(f"{title}\n{names}\nrate: {stats.rate_source}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
