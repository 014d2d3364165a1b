"""How the command line ends on bad input: a message and exit status 2, not a traceback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer

from padless.data.errors import PadlessInputError

#: Errors that mean "the input is bad" (a malformed manifest line, unreadable audio, a missing
#: file, a folder that is not ours) rather than "padless has a bug".
INPUT_ERRORS = (
    PadlessInputError,
    FileExistsError,
    FileNotFoundError,
    IsADirectoryError,
    PermissionError,
)


@contextlib.contextmanager
def input_errors() -> Iterator[None]:
    """End with ``error: <message>`` on stderr and exit status 2 when the body raises one of
    `INPUT_ERRORS`; anything else keeps its traceback. ``SystemExit`` rather than
    ``typer.Exit``, so it also works around the whole app (the console script)."""
    try:
        yield
    except INPUT_ERRORS as err:
        typer.echo(f"error: {err}", err=True)
        raise SystemExit(2) from None
