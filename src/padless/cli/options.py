"""What every command module shares about options: which ones the user actually gave.

Options show the defaults of the configs they override (read from the config classes, so they
are written once); a command builds its config with `dataclasses.replace` from only the options
the user gave (`given`), so a default that depends on another option (``--paper``) is never
overridden by the one shown.
"""

from __future__ import annotations

from typing import Any

import typer
from click.core import ParameterSource

_FROM_USER = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.PROMPT)


def given(ctx: typer.Context, *names: str) -> dict[str, Any]:
    """The options among ``names`` (parameter names) the user gave, with their values."""
    return {n: ctx.params[n] for n in names if ctx.get_parameter_source(n) in _FROM_USER}
