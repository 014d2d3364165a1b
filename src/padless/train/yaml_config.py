"""YAML files -> trees of frozen config dataclasses, with dotted command-line overrides.

Generic: it knows nothing about training. Given a dataclass type it reads the field types and
converts plain YAML data into instances, checking every value on the way::

    config = load_config(TrainingConfig, "configs/demo-tiny.yaml", ["train.max_steps=40"])
    write_config(config, run_dir / "config.yaml")   # loads back to an equal config

What it understands in field types: nested dataclasses, ``X | None``, ``Literal[...]``,
``bool``/``int``/``float``/``str``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]``,
``dict[str, X]``, unions of plain types (tried in order), and *strategy unions*: a union of
dataclasses that each name themselves with a class attribute ``kind: ClassVar[str]``. The YAML
mapping of such a field says which one with a ``kind`` key::

    batch: {kind: fixed, batch_size: 32}        # -> FixedBatches(batch_size=32)
    batch: fixed                                # -> FixedBatches() (just the kind)

Overrides are ``dotted.key=value`` with the value parsed as YAML (``3e-4``, ``null``, ``[a, b]``).
Overriding a strategy's ``kind`` starts that section afresh from the new class's defaults (the
file's keys belonged to the old class); other overrides of the same section still apply.

An unknown key, a missing required field or a value of the wrong type raises `ConfigError`
naming the dotted key and where it came from (the file, or the command line).
"""

from __future__ import annotations

import dataclasses
import re
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from padless.data.errors import PadlessInputError

T = TypeVar("T")

#: Exponent floats without a dot ("3e-4"), which YAML 1.1 (PyYAML) leaves as strings.
_YAML11_FLOAT = re.compile(r"[-+]?\d+[eE][-+]?\d+")

#: Name of the class attribute (and YAML key) that picks a member of a strategy union.
KIND = "kind"


class ConfigError(PadlessInputError):
    """A config file or override that does not fit the config dataclasses."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "config")


def load_config(
    cls: type[T],
    path: str | Path | None,
    overrides: Sequence[str] = (),
    *,
    namespace: Mapping[str, Any] | None = None,
) -> T:
    """Read ``path`` (YAML; None: all defaults), apply ``key=value`` overrides, build ``cls``.

    ``namespace`` resolves type names that the config modules import only for type checking.
    """
    source = str(path) if path is not None else "<defaults>"
    data: Any = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{source}: not valid YAML: {err}") from err
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: the top level must be a mapping of sections")
    from_cli: set[str] = set()
    parsed = [parse_override(text) for text in overrides]
    # A new kind clears its section (see `_set_dotted`): apply kinds first so the section's
    # other overrides survive whatever order they were given in.
    parsed.sort(key=lambda kv: kv[0].rsplit(".", 1)[-1] != KIND)
    for key, value in parsed:
        _set_dotted(data, key, value)
        from_cli.add(key)
    return from_data(cls, data, source=source, namespace=namespace, from_cli=from_cli)


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=3e-4"`` -> ``("a.b", 0.0003)``; the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: expected dotted.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {err}") from err
    return key, value


def from_data(
    cls: type[T],
    data: Any,
    *,
    source: str = "<config>",
    namespace: Mapping[str, Any] | None = None,
    from_cli: set[str] | None = None,
) -> T:
    """Build ``cls`` from plain data (mappings, lists, scalars)."""
    builder = _Builder(source, dict(namespace or {}), from_cli or set())
    return typing.cast(T, builder.convert(cls, data, ""))


def to_data(config: Any) -> Any:
    """A config tree as plain data (the inverse of `from_data`): strategy classes get their
    ``kind``, tuples become lists."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        out: dict[str, Any] = {}
        kind = getattr(type(config), KIND, None)
        if isinstance(kind, str):
            out[KIND] = kind
        for f in dataclasses.fields(config):
            if f.init:
                out[f.name] = to_data(getattr(config, f.name))
        return out
    if isinstance(config, tuple | list):
        return [to_data(v) for v in config]
    if isinstance(config, Mapping):
        return {str(k): to_data(v) for k, v in config.items()}
    if isinstance(config, Path):
        return str(config)
    return config


def dump_config(config: Any) -> str:
    """The YAML text of a config tree (keys in field order)."""
    return yaml.safe_dump(to_data(config), sort_keys=False, default_flow_style=None)


def write_config(config: Any, path: str | Path) -> Path:
    """Write ``config`` as YAML to ``path``; `load_config` reads it back to an equal config."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_config(config))
    return path


# ---------------------------------------------------------------------- internals


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = data
    for i, part in enumerate(parents):
        child = node.get(part)
        if isinstance(child, str):  # a strategy given by its kind alone
            child = node[part] = {KIND: child}
        if not isinstance(child, dict):
            if child is not None:
                where = ".".join(parents[: i + 1])
                raise ConfigError(f"override {key}: {where} is not a section")
            child = node[part] = {}
        node = child
    if last == KIND and isinstance(node.get(KIND), str) and node[KIND] != value:
        node.clear()  # another strategy: the file's keys were the old one's
    node[last] = value


def _strategy_kinds(members: Sequence[Any]) -> dict[str, type] | None:
    """``{kind: class}`` when every member is a dataclass naming itself with ``kind``."""
    kinds: dict[str, type] = {}
    for m in members:
        kind = getattr(m, KIND, None) if dataclasses.is_dataclass(m) else None
        if not isinstance(kind, str):
            return None
        kinds[kind] = m
    return kinds


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


class _Builder:
    def __init__(self, source: str, namespace: dict[str, Any], from_cli: set[str]) -> None:
        self.source = source
        self.namespace = namespace
        self.from_cli = from_cli

    def error(self, key: str, message: str) -> ConfigError:
        where = f"{self.source} (set on the command line)" if key in self.from_cli else self.source
        return ConfigError(f"{where}: {key or '<top level>'}: {message}")

    def hints(self, cls: type) -> dict[str, Any]:
        module = sys.modules.get(cls.__module__)
        globalns = dict(vars(module)) if module is not None else {}
        try:
            return typing.get_type_hints(cls, globalns=globalns, localns=self.namespace)
        except NameError as err:
            raise TypeError(
                f"cannot resolve the field types of {cls.__name__} ({err}); pass the missing "
                "name in namespace="
            ) from err

    def convert(self, tp: Any, value: Any, key: str) -> Any:
        origin = typing.get_origin(tp)
        if tp is Any:
            return value
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self.dataclass(tp, value, key)
        if origin in (Union, types.UnionType):
            return self.union(typing.get_args(tp), value, key)
        if origin is Literal:
            choices = typing.get_args(tp)
            if value not in choices or isinstance(value, bool) != any(
                isinstance(c, bool) for c in choices
            ):
                raise self.error(key, f"{value!r} is not one of {list(choices)}")
            return value
        if origin in (tuple, list):
            return self.sequence(tp, origin, value, key)
        if origin in (dict, Mapping):
            kt, vt = typing.get_args(tp) or (str, Any)
            if not isinstance(value, Mapping):
                raise self.error(key, f"expected a mapping, got {value!r}")
            return {
                self.convert(kt, k, f"{key}.{k}"): self.convert(vt, v, f"{key}.{k}")
                for k, v in value.items()
            }
        return self.scalar(tp, value, key)

    def scalar(self, tp: Any, value: Any, key: str) -> Any:
        if tp is type(None):
            if value is not None:
                raise self.error(key, f"expected null, got {value!r}")
            return None
        if tp is bool:
            ok = isinstance(value, bool)
        elif tp is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif tp is float:
            if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
                value = float(value)  # PyYAML (YAML 1.1) reads 3e-4 as a string
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif tp is str:
            ok = isinstance(value, str)
        else:
            raise TypeError(f"{key}: field type {_type_name(tp)} is not supported by the loader")
        if not ok:
            raise self.error(key, f"expected {_type_name(tp)}, got {value!r}")
        return value

    def sequence(self, tp: Any, origin: Any, value: Any, key: str) -> Any:
        if not isinstance(value, list | tuple):
            raise self.error(key, f"expected a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise self.error(key, f"expected {len(args)} items, got {len(value)}")
            return tuple(
                self.convert(a, v, f"{key}[{i}]")
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        item = args[0] if args else Any
        items = [self.convert(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items

    def union(self, members: Sequence[Any], value: Any, key: str) -> Any:
        if value is None:
            if type(None) in members:
                return None
            raise self.error(key, "must not be null")
        members = [m for m in members if m is not type(None)]
        kinds = _strategy_kinds(members)
        if kinds is not None:
            if isinstance(value, str):  # just the kind: that class with its defaults
                value = {KIND: value}
            if not isinstance(value, Mapping) or KIND not in value:
                raise self.error(key, f"expected a mapping with {KIND}: one of {list(kinds)}")
            cls = kinds.get(value[KIND])
            if cls is None:
                raise self.error(f"{key}.{KIND}", f"{value[KIND]!r} is not one of {list(kinds)}")
            return self.dataclass(cls, value, key)
        errors = []
        for member in members:  # plain types, in the order written
            try:
                return self.convert(member, value, key)
            except ConfigError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        expected = " or ".join(_type_name(m) for m in members)
        raise self.error(key, f"expected {expected}, got {value!r}")

    def dataclass(self, cls: type, value: Any, key: str) -> Any:
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a mapping ({cls.__name__}), got {value!r}")
        prefix = f"{key}." if key else ""
        hints = self.hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        kind = getattr(cls, KIND, None)
        unknown = [k for k in value if k not in fields and not (k == KIND and kind is not None)]
        if unknown:
            known = ", ".join(fields)
            raise self.error(f"{prefix}{unknown[0]}", f"unknown key (known: {known})")
        kwargs: dict[str, Any] = {}
        for name, f in fields.items():
            if name in value:
                kwargs[name] = self.convert(hints[name], value[name], f"{prefix}{name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise self.error(f"{prefix}{name}", "required, but not set")
        try:
            return cls(**kwargs)
        except (ValueError, TypeError) as err:  # the dataclass's own checks
            raise self.error(key, str(err)) from err


__all__ = [
    "KIND",
    "ConfigError",
    "dump_config",
    "from_data",
    "load_config",
    "parse_override",
    "to_data",
    "write_config",
]
