"""``padless model info``, ``padless transcribe`` and ``padless bench-rtfx``."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from padless.cli.errors import at_least, input_errors
from padless.cli.options import given
from padless.data.errors import NoExamplesError
from padless.data.example import Task
from padless.infer.options import CacheMode, DecodingOptions, DType, RtfxConfig, Strategy

_DECODING = DecodingOptions()
_RTFX = RtfxConfig()

model_app = typer.Typer(help="Inspect model presets and checkpoints.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
    app.command("transcribe")(transcribe)
    app.command("bench-rtfx")(bench_rtfx)


@model_app.command("info")
def info(
    preset_or_checkpoint: str = typer.Argument(..., help="Preset name or checkpoint file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Layers, widths and parameter counts, without allocating weights (meta device)."""
    import orjson

    from padless.model import PRESETS, build_on_meta, get_config, parameter_counts

    try:
        config = get_config(preset_or_checkpoint)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="PRESET_OR_CHECKPOINT") from None
    counts = parameter_counts(build_on_meta(config))
    enc, dec, feats = config.encoder, config.decoder, config.features
    report: dict[str, Any] = {
        "name": config.name,
        "source": "preset" if preset_or_checkpoint in PRESETS else "checkpoint",
        "params": counts,
        "vocab_size": config.vocab_size,
        "features": {"n_mels": feats.n_mels, "hop_ms": 1000 * feats.hop_length / feats.sample_rate},
        "encoder": {
            "layers": enc.n_layers,
            "d_model": enc.d_model,
            "heads": enc.n_heads,
            "ff_dim": enc.ff_dim,
            "conv_kernel": enc.conv_kernel,
            "subsampling": enc.subsampling_factor,
            "subsampling_channels": enc.subsampling_channels,
        },
        "decoder": {
            "layers": dec.n_layers,
            "d_model": dec.d_model,
            "heads": dec.n_heads,
            "ff_dim": dec.ff_dim,
        },
        "config": config.to_dict(),
    }
    if as_json:
        typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return

    from rich.console import Console
    from rich.table import Table

    def millions(n: int) -> str:
        return f"{n / 1e6:,.2f}M"

    table = Table(title=f"{config.name} ({report['source']})", show_header=False)
    table.add_row("parameters", f"{millions(counts['total'])} ({counts['total']:,})")
    table.add_row(
        "encoder",
        f"FastConformer {enc.n_layers} layers, d={enc.d_model}, {enc.n_heads} heads, "
        f"FFN {enc.ff_dim}, conv k={enc.conv_kernel}, x{enc.subsampling_factor} subsampling "
        f"({enc.subsampling_channels} ch), {feats.n_mels} mels — {millions(counts['encoder'])}",
    )
    if counts["projection"]:
        table.add_row(
            "projection", f"{enc.d_model} -> {dec.d_model} — {millions(counts['projection'])}"
        )
    table.add_row(
        "decoder",
        f"Transformer {dec.n_layers} layers, d={dec.d_model}, {dec.n_heads} heads, "
        f"FFN {dec.ff_dim}, vocab {config.vocab_size} (tied head) — "
        f"{millions(counts['decoder'])}",
    )
    Console().print(table)


_MANIFEST_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")


def _read_inputs(paths: list[str]) -> list[Any]:
    """Examples from manifests (NeMo/Lhotse JSON lines, shard folders) and audio files."""
    import soundfile as sf

    from padless.data.example import Example, FileAudio
    from padless.data.stream import read_manifest

    examples: list[Example] = []
    for path in paths:
        if path.endswith(_MANIFEST_SUFFIXES) or Path(path).is_dir():
            examples.extend(read_manifest(path, require_text=False))
            continue
        try:
            info = sf.info(path)
        except (RuntimeError, sf.LibsndfileError) as err:
            raise typer.BadParameter(f"{path}: not a readable audio file ({err})") from None
        examples.append(
            Example(
                id=path,
                duration=info.frames / info.samplerate,
                audio=FileAudio(path),
                sampling_rate=info.samplerate,
            )
        )
    return examples


def transcribe(
    ctx: typer.Context,
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint saved with its tokenizer.")],
    inputs: Annotated[
        list[str], typer.Argument(help="Audio files and/or manifests (JSON lines, shard folders).")
    ],
    source_lang: Annotated[
        str | None, typer.Option(help="Spoken language (default: each example's own).")
    ] = None,
    target_lang: Annotated[
        str | None, typer.Option(help="Output language for --task ast (default: the example's).")
    ] = None,
    task: Annotated[
        Task | None, typer.Option(help="asr or ast (default: each example's own).")
    ] = None,
    pnc: Annotated[
        bool | None,
        typer.Option("--pnc/--no-pnc", help="Punctuation and capitalisation (default: example's)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Utterances per batch.")] = 16,
    strategy: Annotated[
        Strategy, typer.Option(help="greedy (argmax per step) or beam search.")
    ] = _DECODING.strategy,
    beam_size: Annotated[
        int, typer.Option(help="--strategy beam: hypotheses per utterance.")
    ] = _DECODING.beam_size,
    length_penalty: Annotated[
        float, typer.Option(help="--strategy beam: length penalty alpha.")
    ] = _DECODING.length_penalty,
    decoding: Annotated[
        CacheMode, typer.Option(help="kv, or recompute (the NeMo-like reference).")
    ] = _DECODING.cache,
    max_generation_delta: Annotated[
        int | None,
        typer.Option(
            help="NeMo's output limit: encoder frames + this - prompt length (default: "
            "DecodingOptions.max_tokens_per_second of audio)."
        ),
    ] = _DECODING.max_generation_delta,
    ctc_weight: Annotated[
        float,
        typer.Option(
            help="--strategy beam: joint CTC/attention decoding of ASR rows, the weight of "
            "the CTC head's prefix score (a model trained with CTC; 0 = decoder alone)."
        ),
    ] = _DECODING.ctc_weight,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    out: Annotated[
        Path | None, typer.Option(help="Write JSON lines here (default: stdout).")
    ] = None,
) -> None:
    """Transcribe (or translate) audio with a checkpoint; one JSON line per utterance."""
    import orjson
    import torch
    from rich.progress import Progress

    from padless.infer.cpu import keep_freed_memory
    from padless.infer.transcribe import PromptOverrides
    from padless.infer.transcribe import transcribe as run_transcribe
    from padless.model.checkpoint import load_checkpoint

    try:
        options = _decoding_options(ctx)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    if device == "cpu":
        keep_freed_memory()
    try:
        ckpt = load_checkpoint(checkpoint, device=device)
        tokenizer = ckpt.tokenizer()
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="CHECKPOINT") from None
    examples = _read_inputs(inputs)
    if not examples:
        raise NoExamplesError.empty(inputs)
    overrides = PromptOverrides(
        source_lang=source_lang,
        target_lang=target_lang,
        task=task,
        pnc=pnc,
    )
    with torch.inference_mode(), Progress(transient=True, disable=out is None) as progress:
        bar = progress.add_task("transcribing", total=len(examples))
        try:
            with input_errors():  # unreadable or non-finite audio: "error: example ..."
                results = run_transcribe(
                    ckpt.model,
                    tokenizer,
                    examples,
                    overrides=overrides,
                    options=options,
                    batch_size=batch_size,
                    on_batch=lambda n: progress.advance(bar, n),
                )
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None
    lines = []
    for example, result in zip(examples, results, strict=True):
        row: dict[str, Any] = {
            "id": result.id,
            "text": result.text,
            "source_lang": result.source_lang,
            "target_lang": result.target_lang,
            "task": result.task,
            "pnc": result.pnc,
            "duration": example.duration,
        }
        if example.text is not None:
            row["reference"] = example.text
        if result.score is not None:
            row["score"] = result.score
        lines.append(orjson.dumps(row))
    payload = b"\n".join(lines) + b"\n" if lines else b""
    if out is None:
        sys.stdout.buffer.write(payload)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(payload)
        typer.echo(f"{len(lines)} transcripts -> {out}", err=True)


def _decoding_options(ctx: typer.Context) -> DecodingOptions:
    """`DecodingOptions` with only the options the user gave replaced; beam settings need
    --strategy beam."""
    options = given(
        ctx,
        "strategy",
        "beam_size",
        "length_penalty",
        "decoding",
        "max_generation_delta",
        "ctc_weight",
    )
    if "decoding" in options:
        options["cache"] = options.pop("decoding")
    decoding = replace(DecodingOptions(), **options)
    beam_only = sorted({"beam_size", "length_penalty", "ctc_weight"} & set(options))
    if beam_only and decoding.strategy != "beam":
        flags = " and ".join("--" + name.replace("_", "-") for name in beam_only)
        raise ValueError(f"{flags} apply to --strategy beam")
    return decoding


def bench_rtfx(
    presets: Annotated[
        str, typer.Option(help="Comma-separated presets (random weights) or checkpoints.")
    ],
    manifest: Annotated[list[str], typer.Option(help="Manifest(s) of the utterances to time.")],
    batch_size: Annotated[int, typer.Option(help="Utterances per batch.")] = _RTFX.batch_size,
    decoding: Annotated[
        str, typer.Option(help="kv, recompute, or both as 'kv,recompute' (same run).")
    ] = _RTFX.options.cache,
    dtype: Annotated[DType, typer.Option(help="Weights and activations.")] = _RTFX.dtype,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = _RTFX.device,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    forced_length: Annotated[
        bool, typer.Option(help="Emit exactly each reference's token count (text + EOS).")
    ] = _RTFX.forced_length,
    tokenizer: Annotated[
        Path | None,
        typer.Option(help="Tokenizer dir: prompts, vocab size and --forced-length counts."),
    ] = None,
    repeats: Annotated[int, typer.Option(help="Timed passes per pair (median).")] = _RTFX.repeats,
    seed: Annotated[int, typer.Option(help="Seed of the random weights.")] = 0,
    keep_freed_memory: Annotated[
        bool,
        typer.Option(help="CPU: keep freed memory in the heap (glibc); see padless.infer.cpu."),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """RTFx of presets x decoding modes, measured side by side in one run."""
    import orjson
    import torch

    from padless.data.stream import read_manifest
    from padless.environment import environment_info
    from padless.infer import cpu
    from padless.infer.options import cache_mode
    from padless.infer.rtfx import build_timing_model, run_rtfx

    at_least(1, batch_size=batch_size, repeats=repeats, threads=threads)
    try:
        modes = [cache_mode(m.strip()) for m in decoding.split(",")]
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--decoding") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise typer.BadParameter("CUDA is not available on this machine", param_hint="--device")
    if threads is not None:
        torch.set_num_threads(threads)
    malloc_tuned = device == "cpu" and keep_freed_memory and cpu.keep_freed_memory()
    config = RtfxConfig(
        batch_size=batch_size,
        dtype=dtype,
        device=device,
        forced_length=forced_length,
        repeats=repeats,
    )
    tok = None
    if tokenizer is not None:
        from padless.data.tokenizer import CanaryTokenizer

        tok = CanaryTokenizer.load(tokenizer)
    examples = list(read_manifest(manifest, require_text=forced_length and tok is not None))
    if not examples:
        raise NoExamplesError.empty(manifest)
    names = [p.strip() for p in presets.split(",") if p.strip()]
    try:
        models = {
            name: build_timing_model(name, config, tok.vocab_size if tok else None, seed)
            for name in names
        }
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--presets") from None

    def report(name: str, mode: str, repeat: int, rtfx: float) -> None:
        if not as_json:
            typer.echo(f"  {name:<32} {mode:<10} pass {repeat + 1}: RTFx {rtfx:,.1f}", err=True)

    try:
        results = run_rtfx(models, examples, modes, config, tok, on_result=report)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    payload = {
        "results": [dataclasses.asdict(r) for r in results],
        "config": {
            "presets": names,
            "manifest": manifest,
            "batch_size": batch_size,
            "decoding": modes,
            "dtype": dtype,
            "device": device,
            "threads": torch.get_num_threads(),
            "forced_length": forced_length,
            "tokenizer": str(tokenizer) if tokenizer else None,
            "repeats": repeats,
            "seed": seed,
            "malloc_keep_freed": malloc_tuned,
        },
        "machine": environment_info("torch"),
    }
    if as_json:
        typer.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"RTFx, {results[0].audio_s:,.0f} s of audio, batch {batch_size}")
    for column in ("preset", "decoding", "params", "RTFx", "wall s", "tokens"):
        table.add_column(column, justify="left" if column in ("preset", "decoding") else "right")
    for r in results:
        table.add_row(
            r.preset,
            r.decoding,
            f"{r.params / 1e6:,.1f}M",
            f"{r.rtfx:,.1f}",
            f"{r.wall_s:,.2f}",
            f"{r.output_tokens:,}",
        )
    Console().print(table)
