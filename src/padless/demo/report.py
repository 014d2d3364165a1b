"""``OUT/report.md`` (with PNG plots in ``OUT/plots/``) and ``OUT/report.json`` from the data of
the demo's steps, and the console's closing table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from padless.demo.config import EVAL_DIR, PLOTS_DIR, REPORT_JSON, REPORT_MD, RUN_DIR, DemoConfig

if TYPE_CHECKING:
    from rich.console import Console
#: The sections of report.md, in order (the test checks every one is there).
SECTIONS = (
    "Headline numbers",
    "Data",
    "Bucket plan",
    "Batch sizes",
    "Padding: optimized vs random fixed-size batches",
    "Training",
    "Scores on the test split",
    "Examples",
    "RTFx",
    "Where the time went",
)
#: report.json keys whose values are timings: they differ between two runs of the same seed.
TIMING_KEYS = frozenset({"train_wall_s", "rtfx_kv", "rtfx_recompute", "timings", "audio_s_per_s"})


def headline(config: DemoConfig, r: dict[str, Any]) -> dict[str, Any]:
    """The report.json object: the headline numbers, then every step's data under ``steps``."""
    ev, pad, tr, rt = r["evaluate"], r["padding"], r["train"], r["rtfx"]
    ours, base = pad["optimized"], pad["baseline"]
    return {
        "wer_avg": ev["wer_avg"],
        "bleu_avg": ev["bleu_avg"],
        "wer": ev["wer"],
        "bleu": ev["bleu"],
        "test_utterances": ev["utterances"],
        "audio_padding": ours["audio_padding"],
        "token_padding": ours["token_padding"],
        "baseline_audio_padding": base["audio_padding"],
        "baseline_token_padding": base["token_padding"],
        "mean_batch_size": ours["mean_batch_size"],
        "baseline_mean_batch_size": base["mean_batch_size"],
        "train_steps": tr["steps"],
        "train_wall_s": tr["wall_s"],
        "audio_s_per_s": tr["audio_s_per_s"],
        "loss_first": tr["loss_first"],
        "loss_last": tr["loss_last"],
        "rtfx_kv": rt["rtfx_kv"],
        "rtfx_recompute": rt["rtfx_recompute"],
        "targets": {"wer_avg": config.target_wer, "bleu_avg": config.target_bleu},
        "timings": r["timings"],
        "steps": {k: v for k, v in r.items() if k != "timings"},
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return [*out, ""]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def draw_plots(cfg: DemoConfig, r: dict[str, Any]) -> list[Path]:
    """The report's PNGs (the plan's was drawn by its step) from the steps' data ``r``."""
    from padless.demo.plots import plot_padding, plot_rtfx, plot_scores
    from padless.eval.plot_run import plot_runs

    plots = cfg.out / PLOTS_DIR
    ev, pad = r["evaluate"], r["padding"]
    targets = (cfg.target_wer, cfg.target_bleu)
    written = [
        plot_padding(pad["optimized"], pad["baseline"], plots / "padding.png"),
        plot_scores(ev["wer"], ev["bleu"], targets, plots / "scores.png"),
        plot_rtfx(r["rtfx"], plots / "rtfx.png"),
    ]
    written += plot_runs([cfg.out / RUN_DIR], plots / "training")[0]
    return written


def write_report(cfg: DemoConfig, r: dict[str, Any]) -> tuple[Path, Path]:
    """Write report.md and report.json from the steps' data ``r`` (after `draw_plots`);
    returns their paths."""
    ev, pad, tr, rt = r["evaluate"], r["padding"], r["train"], r["rtfx"]
    ours, base = pad["optimized"], pad["baseline"]
    data = headline(cfg, r)
    speedup = rt["rtfx_kv"] / rt["rtfx_recompute"]

    def ok(good: bool) -> str:
        return "met" if good else "**not met**"

    wer_ok = ev["wer_avg"] is not None and ev["wer_avg"] <= cfg.target_wer
    bleu_ok = ev["bleu_avg"] is not None and ev["bleu_avg"] >= cfg.target_bleu
    lines = [
        "# padless demo report",
        "",
        f"Folder `{cfg.out}` (paths below are inside it); recipe `{cfg.training_config}`, "
        f"baseline `{cfg.baseline}`. "
        "`report.json` holds the same numbers.",
        "",
        f"## {SECTIONS[0]}",
        "",
        *_table(
            ["", "value", "note"],
            [
                [
                    "WER, mean of the ASR languages",
                    f"{_num(ev['wer_avg'])}%",
                    f"target <= {cfg.target_wer:g}%: {ok(wer_ok)}",
                ],
                [
                    "BLEU, mean of the AST directions",
                    _num(ev["bleu_avg"]),
                    f"target >= {cfg.target_bleu:g}: {ok(bleu_ok)}",
                ],
                [
                    "audio padding",
                    _pct(ours["audio_padding"]),
                    f"baseline {_pct(base['audio_padding'])}",
                ],
                [
                    "token padding",
                    _pct(ours["token_padding"]),
                    f"baseline {_pct(base['token_padding'])}",
                ],
                [
                    "mean batch size (examples)",
                    _num(ours["mean_batch_size"]),
                    f"baseline {_num(base['mean_batch_size'])}",
                ],
                ["training", f"{tr['steps']} steps", f"{tr['wall_s']:.0f} s"],
                [
                    "RTFx, KV cache",
                    f"{rt['rtfx_kv']:.0f}",
                    f"recompute {rt['rtfx_recompute']:.0f} (x{speedup:.2f})",
                ],
            ],
        ),
        f"## {SECTIONS[1]}",
        "",
        f"The embedded corpus (espeak-ng, en/de/fr/es, ASR and AST): {r['corpus']['summary']}. "
        f"Tokenizer: {r['tokenizer']['summary']}.",
        "",
        *_table(
            ["split", "utterances", "hours"],
            [
                [k, f"{v['utterances']:,}", f"{v['seconds'] / 3600:.3f}"]
                for k, v in r["corpus"]["splits"].items()
            ],
        ),
        f"## {SECTIONS[2]}",
        "",
        f"{r['plan']['summary']}. Filters: `{r['plan']['filters']}`. The grid is drawn over the "
        "duration x output-tokens distribution of the training set; the right panel shows each "
        "bucket's share of the audio.",
        "",
        "![bucket plan](plots/plan.png)",
        "",
        f"## {SECTIONS[3]}",
        "",
        f"{r['batch_sizes']['summary']}. "
        + (
            "Training uses this table (`batch: table`)."
            if r["batch_sizes"]["used_for_training"]
            else "The recipe sets its own batch policy, so training does not use this table; "
            "it shows what the memory budget would allow."
        ),
        "",
        *_table(
            ["bucket", *[str(i) for i in range(len(r["batch_sizes"]["batch_sizes"]))]],
            [["batch size", *[str(n) for n in r["batch_sizes"]["batch_sizes"]]]],
        ),
        f"## {SECTIONS[4]}",
        "",
        "Both samplers run over one epoch of the same training metadata (no training): the "
        "recipe's plan, filters and batch policy against `configs/fixed-batch.yaml` (one "
        "bucket, random batches, a fixed number of examples). Padding is the share of batch "
        "positions that are padding, summed over the epoch.",
        "",
        *_table(
            [
                "scheme",
                "buckets",
                "batches",
                "examples",
                "audio padding",
                "token padding",
                "mean batch",
                "audio per batch",
            ],
            [
                [
                    s["name"],
                    str(s["buckets"]),
                    f"{s['batches']:,}",
                    f"{s['examples']:,}",
                    _pct(s["audio_padding"]),
                    _pct(s["token_padding"]),
                    _num(s["mean_batch_size"]),
                    f"{s['mean_batch_seconds']:.1f} s",
                ]
                for s in (ours, base)
            ],
        ),
        "![padding and batch size](plots/padding.png)",
        "",
        f"During training (from `metrics.jsonl`): audio padding {_pct(tr['audio_padding'])}, "
        f"token padding {_pct(tr['token_padding'])}.",
        "",
        f"## {SECTIONS[5]}",
        "",
        f"{tr['summary']}. Curves from `padless plot-run` (all of them in `plots/training/`).",
        "",
        "![training loss](plots/training/loss.png)",
        "",
        f"## {SECTIONS[6]}",
        "",
        f"{ev['summary']}. WER on normalised text, BLEU with sacrebleu's defaults "
        f"(docs/eval.md). Hypotheses and scores: `{EVAL_DIR}/`.",
        "",
        *_table(["ASR language", "WER (%)"], [[k, _num(v)] for k, v in sorted(ev["wer"].items())]),
        *_table(["AST direction", "BLEU"], [[k, _num(v)] for k, v in sorted(ev["bleu"].items())]),
        "![scores](plots/scores.png)",
        "",
        f"## {SECTIONS[7]}",
        "",
        *_table(
            ["task", "reference", "hypothesis"],
            [
                [f"{s['task']} {s['group']}", _cell(s["reference"]), _cell(s["hypothesis"])]
                for s in ev["samples"]
            ],
        ),
        f"## {SECTIONS[8]}",
        "",
        f"{rt['summary']}. Process CPU time gives RTFx {rt['rtfx_cpu_kv']:.0f} (KV cache) and "
        f"{rt['rtfx_cpu_recompute']:.0f} (recompute): steadier than wall time on a shared machine.",
        "",
        "![RTFx](plots/rtfx.png)",
        "",
        f"## {SECTIONS[9]}",
        "",
        *_table(
            ["step", "seconds", ""],
            [
                [k, f"{v['seconds']:.1f}", "kept from an earlier run" if v["kept"] else ""]
                for k, v in r["timings"].items()
            ],
        ),
    ]
    md, js = cfg.out / REPORT_MD, cfg.out / REPORT_JSON
    md.write_text("\n".join(lines), encoding="utf-8")
    js.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    return md, js


def print_headline(console: Console, report: dict[str, Any], path: Path) -> None:
    """The console's closing table."""
    from rich.table import Table

    table = Table(title="padless demo", title_justify="left")
    table.add_column("")
    table.add_column("optimized / model", justify="right")
    table.add_column("baseline / reference", justify="right")
    targets = report["targets"]
    table.add_row("WER avg (%)", _num(report["wer_avg"]), f"target <= {targets['wer_avg']:g}")
    table.add_row("BLEU avg", _num(report["bleu_avg"]), f"target >= {targets['bleu_avg']:g}")
    table.add_row(
        "audio padding", _pct(report["audio_padding"]), _pct(report["baseline_audio_padding"])
    )
    table.add_row(
        "token padding", _pct(report["token_padding"]), _pct(report["baseline_token_padding"])
    )
    table.add_row(
        "mean batch size", _num(report["mean_batch_size"]), _num(report["baseline_mean_batch_size"])
    )
    table.add_row("training", f"{report['train_steps']} steps", f"{report['train_wall_s']:.0f} s")
    table.add_row(
        "RTFx (KV cache / recompute)", f"{report['rtfx_kv']:.0f}", f"{report['rtfx_recompute']:.0f}"
    )
    console.print(table)
    console.print(f"report: {path}")
