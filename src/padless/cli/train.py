"""`padless train`: one training process (DDP: ``torchrun ... -m padless.train``, same
arguments; see `padless.train.loop`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from padless.cli.errors import input_errors


def register(app: typer.Typer) -> None:
    app.command("train")(train)


def train(
    config: Annotated[Path, typer.Argument(help="Training config (YAML).")],
    run_dir: Annotated[
        Path, typer.Option("--run-dir", help="Run folder: config, metrics, checkpoints.")
    ],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="dotted.key=value overrides (train.max_steps=40).")
    ] = None,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Continue from this run folder or checkpoint.")
    ] = None,
) -> None:
    """Train a model as CONFIG says, in one process (several: torchrun ... -m padless.train,
    same arguments). The resolved config, metrics.jsonl and checkpoints go to the run folder;
    the same folder continues a stopped run."""
    from padless.train.loop import run

    with input_errors():
        run(str(config), list(overrides or []), str(run_dir), resume)
