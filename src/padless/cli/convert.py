"""`padless convert from-nemo|to-nemo`: NeMo Canary ``.nemo`` archives <-> padless checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Convert models between NeMo (.nemo, Canary) and padless checkpoints.",
        no_args_is_help=True,
    )
    group.command("from-nemo")(from_nemo)
    group.command("to-nemo")(to_nemo)
    app.add_typer(group, name="convert")


def from_nemo(
    model: Annotated[Path, typer.Argument(help="A NeMo Canary .nemo file.")],
    out: Annotated[Path, typer.Option("--out", help="padless checkpoint to write (.pt).")],
    tokenizer_dir: Annotated[
        Path | None,
        typer.Option(help="Also save the tokenizer here (a training config's data.tokenizer)."),
    ] = None,
) -> None:
    """A NeMo Canary model (EncDecMultiTaskModel) as a padless checkpoint with its tokenizer,
    for `padless transcribe` and as `padless train` initialisation. Anything padless cannot
    reproduce is an error naming the config key or weight."""
    from padless.interop.nemo import convert_from_nemo

    converted = convert_from_nemo(model, out)
    if tokenizer_dir is not None:
        converted.tokenizer.save(tokenizer_dir)
    config, tok = converted.model.config, converted.tokenizer
    typer.echo(
        f"{model} -> {out}: encoder {config.encoder.n_layers} x {config.encoder.d_model}, "
        f"decoder {config.decoder.n_layers} x {config.decoder.d_model}, vocab "
        f"{config.vocab_size} ({', '.join(tok.block_order)}), prompt format "
        f"{tok.prompt_format.name!r}"
    )


def to_nemo(
    checkpoint: Annotated[Path, typer.Argument(help="A padless checkpoint with its tokenizer.")],
    out: Annotated[Path, typer.Option("--out", help=".nemo file to write.")],
) -> None:
    """A padless checkpoint as a NeMo Canary .nemo archive (EncDecMultiTaskModel.restore_from
    loads it). The model must use NeMo's conventions, as models converted from NeMo do."""
    from padless.interop.nemo import convert_to_nemo

    convert_to_nemo(checkpoint, out)
    typer.echo(f"{checkpoint} -> {out}")
