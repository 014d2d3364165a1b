"""``padless evaluate`` (WER / BLEU of a checkpoint) and ``padless plot-run`` (training-run
report)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from padless.eval.config import EvalConfig

if TYPE_CHECKING:
    from padless.eval.evaluate import EvalResult

_DEFAULTS = EvalConfig()


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
    app.command("plot-run")(plot_run)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint saved with its tokenizer.")],
    manifests: Annotated[
        list[str], typer.Argument(help="Manifests with references (JSON lines, shard folders).")
    ],
    beam: Annotated[int, typer.Option(help="Beam width (1 = greedy).")] = _DEFAULTS.beam_size,
    batch_size: Annotated[int, typer.Option(help="Utterances per batch.")] = _DEFAULTS.batch_size,
    length_penalty: Annotated[
        float | None,
        typer.Option(
            help="Beam length penalty alpha (default: DecodingOptions.length_penalty).",
            show_default=False,
        ),
    ] = _DEFAULTS.length_penalty,
    ctc_weight: Annotated[
        float,
        typer.Option(
            help="Joint CTC/attention decoding of ASR rows: the weight of the CTC head's "
            "prefix score (needs --beam > 1 and a model trained with CTC; 0 = decoder alone)."
        ),
    ] = _DEFAULTS.ctc_weight,
    compare: Annotated[
        Path | None, typer.Option(help="A second checkpoint, scored on the same examples.")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    out: Annotated[
        Path | None,
        typer.Option(help="Write scores.json, hypotheses.jsonl here (OUT/LABEL with --compare)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """WER per ASR language and BLEU per AST direction of a checkpoint on manifests, with the
    Open ASR Leaderboard normalisation for WER (docs/eval.md)."""
    import orjson

    from padless.cli.errors import at_least, input_errors
    from padless.data.errors import NoExamplesError
    from padless.data.stream import read_manifest

    at_least(1, beam=beam, batch_size=batch_size)
    try:
        config = EvalConfig(
            beam_size=beam,
            batch_size=batch_size,
            length_penalty=length_penalty,
            ctc_weight=ctc_weight,
        )
    except ValueError as err:
        _fail(str(err))
    checkpoints = [checkpoint] if compare is None else [checkpoint, compare]
    labels = _labels(checkpoints)
    with input_errors():
        examples = list(read_manifest(manifests, require_text=True))
        if not examples:
            raise NoExamplesError.empty(manifests)
        results = [
            _evaluate_one(path, examples, config, device, quiet=as_json) for path in checkpoints
        ]
    report: dict[str, Any] = {
        "manifests": manifests,
        "decoding": {
            "beam_size": beam,
            "batch_size": batch_size,
            "length_penalty": config.decoding_options().length_penalty,
            "ctc_weight": config.ctc_weight,
        },
        "evaluations": [],
    }
    for path, label, result in zip(checkpoints, labels, results, strict=True):
        entry: dict[str, Any] = {"checkpoint": str(path), "label": label}
        if out is not None:
            target = out if len(checkpoints) == 1 else out / label
            scores, hyps = result.save(target)
            entry.update(scores_file=str(scores), hypotheses_file=str(hyps))
        entry["scores"] = result.to_dict()
        report["evaluations"].append(entry)
    if as_json:
        typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return
    _print_table(labels, results, len(examples))
    if out is not None:
        typer.echo(f"scores and hypotheses -> {out}", err=True)


def _evaluate_one(
    path: Path, examples: list[Any], config: EvalConfig, device: str, quiet: bool
) -> EvalResult:
    import torch
    from rich.console import Console
    from rich.progress import Progress

    from padless.eval.evaluate import evaluate_examples
    from padless.model.checkpoint import load_checkpoint

    if device.startswith("cuda") and not torch.cuda.is_available():
        _fail("--device cuda: CUDA is not available on this machine")
    try:
        ckpt = load_checkpoint(path, device=device)
        tokenizer = ckpt.tokenizer()
    except ValueError as err:
        _fail(str(err))
    with Progress(console=Console(stderr=True), transient=True, disable=quiet) as progress:
        bar = progress.add_task(f"decoding with {path.name}", total=len(examples))
        try:
            return evaluate_examples(
                ckpt.model,
                tokenizer,
                examples,
                config=config,
                on_batch=lambda n: progress.advance(bar, n),
            )
        except ValueError as err:  # e.g. a language or task the tokenizer does not know
            _fail(str(err))


def _labels(paths: list[Path]) -> list[str]:
    """Checkpoint names for columns and output folders: file stems, with the parent folder when
    two are the same."""
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    named = [f"{p.resolve().parent.name}-{p.stem}" for p in paths]
    return named if len(set(named)) == len(named) else [f"{i + 1}-{s}" for i, s in enumerate(stems)]


def _print_table(labels: list[str], results: list[EvalResult], utterances: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{utterances} utterances; WER normalised (Open ASR Leaderboard), BLEU 13a")
    table.add_column("score")
    table.add_column("utts", justify="right")
    for label in labels:
        table.add_column(label, justify="right")
    if len(results) == 2:
        table.add_column("change", justify="right")

    def row(name: str, count: int | None, values: list[float | None], lower_better: bool) -> None:
        cells = ["-" if v is None else f"{v:.2f}" for v in values]
        if len(values) == 2:
            a, b = values
            if a is None or b is None:
                cells.append("")
            else:
                better = (b < a) if lower_better else (b > a)
                color = "green" if better else "red" if a != b else "default"
                cells.append(f"[{color}]{b - a:+.2f}[/{color}]")
        table.add_row(name, "" if count is None else str(count), *cells)

    first = results[0]
    for key, score in first.wer_scores.items():
        row(f"WER {key}", score.utterances, [r.wer.get(key) for r in results], True)
    if first.wer:
        row("WER mean over languages", None, [r.wer_avg for r in results], True)
        asr = sum(s.utterances for s in first.wer_scores.values())
        row("WER pooled", asr, [r.wer_total for r in results], True)
        table.add_section()
    for key, bleu in first.bleu_scores.items():
        row(f"BLEU {key}", bleu.utterances, [r.bleu.get(key) for r in results], False)
    if first.bleu:
        row("BLEU mean over directions", None, [r.bleu_avg for r in results], False)
    Console().print(table)


def plot_run(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (each with metrics.jsonl).")],
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for the PNGs and summary.json (default: RUN/plots)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summaries as JSON.")] = False,
) -> None:
    """Plots of a training run from RUN/metrics.jsonl: loss against steps and wall time,
    throughput, padding, batch size per bucket and per-rank step time. Several runs are
    overlaid."""
    import orjson

    from padless.cli.errors import input_errors
    from padless.eval.plot_run import plot_runs

    if out is None:
        out = runs[0] / ("plots" if len(runs) == 1 else "plots-compare")
    with input_errors():
        written, summaries = plot_runs(runs, out)
    if as_json:
        payload = {"plots": [str(p) for p in written], "runs": summaries}
        typer.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
        return
    _print_summaries(summaries)
    for path in written:
        typer.echo(str(path))


def _print_summaries(summaries: list[dict[str, Any]]) -> None:
    """One column per run, so runs compare side by side."""
    from rich.console import Console
    from rich.table import Table

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    def num(value: float | None, digits: int = 3) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    rows: list[tuple[str, Any]] = [
        ("steps", lambda s: f"{s['steps']} ({s['first_step']}..{s['last_step']})"),
        ("ranks", lambda s: str(s["ranks"])),
        ("wall time (s)", lambda s: num(s["wall_s"], 1)),
        ("loss, first 10% of steps", lambda s: num(s["loss_first"])),
        ("loss, last 10% of steps", lambda s: num(s["loss_last"])),
        ("audio (h)", lambda s: num(s["audio_h"], 2)),
        *(
            [("loss at equal wall time", lambda s: num(s["loss_at_common_wall"]))]
            if len(summaries) > 1
            else []
        ),
        ("audio s per wall s", lambda s: num(s["audio_s_per_s"], 1)),
        ("audio padding", lambda s: pct(s["audio_padding"])),
        ("token padding", lambda s: pct(s["token_padding"])),
        ("step time, slowest rank over mean", lambda s: pct(s["tail_overhead"])),
        ("padded audio, most-loaded rank over mean", lambda s: pct(s["load_imbalance"])),
        ("steps with one bucket on all ranks", lambda s: pct(s["same_bucket_share"])),
        ("data wait share", lambda s: pct(s["data_wait_share"])),
        ("examples skipped", lambda s: str(s["skipped"])),
        ("bad steps (update skipped)", lambda s: str(s["bad_steps"])),
        ("validation points", lambda s: str(s["val_points"])),
    ]
    table = Table(title="training runs")
    table.add_column("")
    for s in summaries:
        table.add_column(s["run"], justify="right")
    for name, cell in rows:
        table.add_row(name, *(cell(s) for s in summaries))
    Console().print(table)
