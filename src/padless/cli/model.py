"""``padless model info``, ``padless transcribe`` and ``padless bench-rtfx``."""

from __future__ import annotations

from typing import Any

import typer

model_app = typer.Typer(help="Inspect model presets and checkpoints.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")


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
