"""Typed trees to frozen dataclasses: the validation behind every experiment file (bench/core/config.py).

`build(cls, tree, origins, path)` converts a raw YAML tree into dataclass `cls` field by field, from the
type hints: nested dataclasses, Literal choices, lists (to tuples), unions (the first member that
fits), optionals, bool, int, float (finite; `1e-4` written without a dot is accepted), str. An unknown
key, a wrong type or a value a dataclass's `__post_init__` rejects (FieldError) is a ConfigError that
names the file that wrote the key (`Origins`), the key path, the problem and what is allowed.
Fields with metadata {"yaml": False} are not read from the tree.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import types
import typing
from typing import Any, Literal, Mapping, Sequence

from safeio.files import InputError


class ConfigError(InputError, ValueError):
    """A problem in an experiment file, reported before any work starts."""


class FieldError(ValueError):
    """Raised by a dataclass's `__post_init__` to reject the value of one of its own fields."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field_name = field_name


KeyPath = tuple  # tuple of str (mapping keys) and int (list indexes)


def format_key_path(path: KeyPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


class Origins:
    """Which file wrote each key path, so that an error names the file the user must edit."""

    def __init__(self):
        self.by_path: dict[KeyPath, str] = {}

    def record(self, tree: Any, source: str, prefix: KeyPath = ()) -> None:
        self.by_path[prefix] = source
        if isinstance(tree, dict):
            for key, value in tree.items():
                self.record(value, source, prefix + (key,))
        elif isinstance(tree, list):
            for index, value in enumerate(tree):
                self.record(value, source, prefix + (index,))

    def source_of(self, path: KeyPath) -> str:
        for cut in range(len(path), -1, -1):
            if path[:cut] in self.by_path:
                return self.by_path[path[:cut]]
        return "?"


_FLOAT_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def type_origin(tp: Any) -> Any:
    return typing.get_origin(tp)


def strip_optional(tp: Any) -> Any:
    if type_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def yaml_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("yaml", True)]


def _describe(tp: Any) -> str:
    tp_stripped = strip_optional(tp)
    suffix = " or null" if tp_stripped is not tp else ""
    origin = type_origin(tp_stripped)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp_stripped)) + suffix
    if origin in (tuple, list):
        return f"a list of {_describe(typing.get_args(tp_stripped)[0])}" + suffix
    if dataclasses.is_dataclass(tp_stripped):
        return "a mapping" + suffix
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(member) for member in typing.get_args(tp_stripped)) + suffix
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(tp_stripped, getattr(tp_stripped, "__name__", str(tp_stripped))) + suffix


def build(cls: type, tree: Any, origins: Origins | None = None, path: KeyPath = ()) -> Any:
    """Convert a raw YAML tree into dataclass `cls`, checking every key and type on the way."""
    return _convert(cls, tree, origins or Origins(), path)


def error_at(origins: Origins, path: KeyPath, message: str) -> ConfigError:
    return ConfigError(f"{origins.source_of(path)}: {format_key_path(path)}: {message}")


def _convert(tp: Any, value: Any, origins: Origins, path: KeyPath) -> Any:
    if tp is Any:
        return copy.deepcopy(value)
    stripped = strip_optional(tp)
    if value is None:
        if stripped is not tp:
            return None
        raise error_at(origins, path, f"a value is required: {_describe(tp)}")
    tp = stripped
    origin = type_origin(tp)

    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, origins, path)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed or isinstance(value, bool) != any(isinstance(a, bool) for a in allowed):
            close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise error_at(origins, path, f"{value!r} is not allowed{hint}; allowed: {', '.join(repr(a) for a in allowed)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise error_at(origins, path, f"expected {_describe(tp)}, got {type(value).__name__} {value!r}")
        (item_type,) = typing.get_args(tp)[:1]
        return tuple(_convert(item_type, item, origins, path + (index,)) for index, item in enumerate(value))
    if origin in (typing.Union, types.UnionType):   # e.g. int | Literal["auto"]: the first that fits
        for member in typing.get_args(tp):
            try:
                return _convert(member, value, origins, path)
            except ConfigError:
                continue
        raise error_at(origins, path, f"expected {_describe(tp)}, got {value!r}")
    if tp is bool:
        if not isinstance(value, bool):
            raise error_at(origins, path, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise error_at(origins, path, f"expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        # YAML 1.1 reads `1e-4` (no dot) as a string; accept plain numeric text for float fields.
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise error_at(origins, path, f"expected a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):
            raise error_at(origins, path, f"must be a finite number, got {value}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise error_at(origins, path, f"expected a string, got {type(value).__name__} {value!r}")
        return value
    raise TypeError(f"bench.core.schema cannot convert to {tp!r} (at {format_key_path(path)})")


def _convert_dataclass(cls: type, value: Any, origins: Origins, path: KeyPath) -> Any:
    if not isinstance(value, dict):
        raise error_at(origins, path, f"expected a mapping with keys {', '.join(allowed_keys(cls))}; got {value!r}")
    fields = yaml_fields(cls)
    allowed = [f.name for f in fields]
    for key in value:
        if key not in allowed:
            raise ConfigError(unknown_key_message(origins.source_of(path + (key,)), path, key, allowed))
    hints = type_hints(cls)
    kwargs = {}
    for f in fields:
        if f.name in value:
            kwargs[f.name] = _convert(hints[f.name], value[f.name], origins, path + (f.name,))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise error_at(origins, path, f"missing required key '{f.name}' ({_describe(hints[f.name])})")
    try:
        return cls(**kwargs)
    except FieldError as error:
        raise error_at(origins, path + (error.field_name,), str(error)) from None


def schema_child(tp: Any, key: Any) -> Any:
    """The type found at `key` inside a value of type `tp`, or raise KeyError/IndexError."""
    tp = strip_optional(tp)
    if dataclasses.is_dataclass(tp):
        fields_by_name = {f.name: f for f in yaml_fields(tp)}
        if key not in fields_by_name:
            raise KeyError(key)
        return type_hints(tp)[key]
    if type_origin(tp) in (tuple, list):
        return typing.get_args(tp)[0]
    return Any  # free-form mappings (method options) are checked later, by the method


def allowed_keys(tp: Any) -> list[str]:
    tp = strip_optional(tp)
    return [f.name for f in yaml_fields(tp)] if dataclasses.is_dataclass(tp) else []


def unknown_key_message(source: str, parent: KeyPath, key: Any, allowed: Sequence[str]) -> str:
    path = format_key_path(parent + (key,))
    close = difflib.get_close_matches(str(key), allowed, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"{source}: {path}: unknown key{hint} Allowed here: {', '.join(allowed)}"


def to_plain(value: Any) -> Any:
    """A JSON-ready copy of a config value: dataclasses to dicts, tuples to lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value
