"""The `padless` command line: a thin front end over the library.

Each area registers its commands from its own module, so a command is found by name:
``grep -rn "def plan" src/padless/cli`` leads to the function, which calls into the library.

- data.py         shard
- tokenizer.py    tokenizer train
- corpus.py       corpus synth, manifest stats, demo
- sampling.py     plan, bench-sampler
- model.py        model info, transcribe, bench-rtfx
- oomptimizer.py  oomptimize
- train.py        train
- eval.py         evaluate, plot-run
- convert.py      convert from-nemo, convert to-nemo
- options.py      which options the user gave (`given`), field defaults (`default_of`)

Option defaults, and the choices of options whose config field is a `Literal`, are read from
the configs the options override (tests/test_cli_defaults.py checks every one). Heavy imports
(torch) happen inside the command functions so ``padless --help`` is fast.
"""

from __future__ import annotations

import importlib

import typer

from padless.cli.errors import PadlessGroup

app = typer.Typer(
    name="padless",
    cls=PadlessGroup,  # every user error: one "error: ..." line, exit status 2
    help="Cheap training and fast inference for attention encoder-decoder speech models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Docstrings are wrapped at 100 columns; markdown mode reflows their paragraphs.
    rich_markup_mode="markdown",
)

# Modules that define `register(app)`; each adds its commands to the root app.
_COMMAND_MODULES = (
    "data",
    "tokenizer",
    "corpus",
    "sampling",
    "model",
    "oomptimizer",
    "train",
    "eval",
    "convert",
)


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(f"padless.cli.{name}").register(app)


@app.command()
def version() -> None:
    """Print the padless version."""
    from padless import __version__

    typer.echo(__version__)


_register_all()


def main() -> None:
    """The ``padless`` console script. Every user error ends with one ``error: ...`` line and
    exit status 2 (`padless.cli.errors`)."""
    app()
