"""What every command module shares about options: which ones the user actually gave.

Options show the defaults of the configs they override (read from the config classes, so they
are written once); a command builds its config with `dataclasses.replace` from only the options
the user gave (`given`), so a default that depends on another option (``--paper``) is never
overridden by the one shown.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import typer

# Compared by name: typer carries its own copy of click, whose ParameterSource is not click's.
_FROM_USER = frozenset({"COMMANDLINE", "ENVIRONMENT", "PROMPT"})


def given(ctx: typer.Context, *names: str) -> dict[str, Any]:
    """The options among ``names`` (parameter names) the user gave, with their values."""
    out = {}
    for name in names:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name in _FROM_USER:
            out[name] = ctx.params[name]
    return out


def default_of(config: type[Any], name: str) -> Any:
    """The default of a field of a config dataclass, for configs that cannot be built without
    arguments (a required field, or a check that needs one)."""
    for f in dataclasses.fields(config):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise ValueError(f"{config.__name__}.{name} has no default")
    raise ValueError(f"{config.__name__} has no field {name!r}")
