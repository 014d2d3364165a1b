"""How the command line ends on bad input: one line ``error: ...`` on stderr and exit status 2,
never a traceback and never exit status 0 with nothing done.

Two kinds of user error end this way:

- usage errors that click finds or a command raises (`typer.BadParameter` naming the option:
  a value out of range, an unknown choice, a missing option), shown as one line instead of
  click's usage box;
- bad input that the library finds, raised as a typed error: a `PadlessInputError` (a
  manifest line, unreadable or non-finite audio, a shard that disagrees with its list, a plan
  or batch-size table that cannot be used, data that leave nothing to do), or a missing,
  existing or unreadable file. The message names the file with its line, the example, the
  bucket or the row.

Everything else is a bug in padless and keeps its traceback. `PadlessGroup` applies this to
every command of the app (also under `typer.testing.CliRunner`); `input_errors()` does it for
a block of code.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from padless.data.errors import PadlessInputError

#: Errors that mean "the input is bad" (a malformed manifest line, unreadable audio, a missing
#: file, a folder that is not ours) rather than "padless has a bug".
INPUT_ERRORS = (
    PadlessInputError,
    FileExistsError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)

#: Exit status of every user error (click's usage errors use it too).
USER_ERROR = 2


def one_line(message: str) -> str:
    """``message`` on one line: its lines joined with "; " (a message may quote a multi-line
    value)."""
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


@contextlib.contextmanager
def input_errors() -> Iterator[None]:
    """End with ``error: <message>`` on stderr and exit status 2 when the body raises one of
    `INPUT_ERRORS`; anything else keeps its traceback. ``SystemExit`` rather than
    ``typer.Exit``, so it also works around the whole app (the console script)."""
    try:
        yield
    except INPUT_ERRORS as err:
        typer.echo(f"error: {one_line(str(err))}", err=True)
        raise SystemExit(USER_ERROR) from None


def at_least(minimum: float, **values: float | None) -> None:
    """A usage error naming the option (``--shard-size`` for ``shard_size``) of the first
    value below ``minimum``; None means "not given"."""
    for name, value in values.items():
        if value is not None and value < minimum:
            raise typer.BadParameter(
                f"must be at least {minimum}, got {value}", param_hint=f"--{name.replace('_', '-')}"
            )


def positive(**values: float | None) -> None:
    """A usage error naming the option of the first value that is not above 0."""
    for name, value in values.items():
        if value is not None and not value > 0:
            raise typer.BadParameter(
                f"must be positive, got {value}", param_hint=f"--{name.replace('_', '-')}"
            )


class PadlessGroup(TyperGroup):
    """The root command group: runs a command with click's own error display turned off and
    ends every user error with one ``error: ...`` line and status 2."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(
                args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra
            )
        try:
            with input_errors():
                # Not standalone: click raises its usage errors here instead of printing them.
                code = super().main(
                    args, prog_name, complete_var, False, windows_expand_args, **extra
                )
        except typer.TyperException as err:  # click's ClickException (typer's own copy)
            message = one_line(err.format_message())
            if message:  # empty after a group called without a command: its help is shown
                typer.echo(f"error: {message}", err=True)
            sys.exit(err.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        # A command's return value is None; typer.Exit(code) comes back as its code.
        sys.exit(code if isinstance(code, int) else 0)
