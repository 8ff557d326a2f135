"""Config machinery: frozen dataclasses built from TOML/JSON dicts, and type-checked dotted overrides.

The dataclasses themselves live next to the code they configure (``training.config.TrainConfig``,
each task's ``Config``); this module only knows how to build, check and override them (STYLE.md 4).
A field typed ``dict`` holds free-form arguments (a model builder's keyword arguments); its
values are checked against ``arg_types`` supplied by the caller.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from archzoo.errors import UserError, unknown

D = TypeVar("D")


def parse_value(text: str) -> Any:
    """Parse an override value as a TOML literal (``3e-4``, ``true``, ``[0.9, 0.99]``); else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    except RecursionError:  # tomllib recurses once per bracket
        raise UserError(f"override value {shorten(text)} is nested too deeply") from None


def shorten(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages that stay one short line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_type(key: str, value: Any, expected: Any) -> Any:
    """Return ``value`` converted to ``expected`` (int -> float, list -> tuple) or raise UserError."""
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(expected)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return check_type(key, value, option)
            except UserError:
                pass
        raise UserError(f"config key {key!r} expects {expected}, got {shorten(value)}")
    if origin is tuple:
        item_types = typing.get_args(expected)
        if not isinstance(value, list | tuple):
            raise UserError(f"config key {key!r} expects a list like [0.9, 0.999], got {shorten(value)}")
        if len(item_types) == 2 and item_types[1] is Ellipsis:
            item_types = (item_types[0],) * len(value)
        if len(item_types) != len(value):
            raise UserError(f"config key {key!r} expects {len(item_types)} values, got {len(value)}")
        return tuple(check_type(key, v, t) for v, t in zip(value, item_types, strict=True))
    if expected is Any or expected is None:
        return value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise UserError(f"config key {key!r}: {shorten(value)} is too large for a float") from None
    if expected in (int, float) and isinstance(value, bool):
        raise UserError(f"config key {key!r} expects {expected.__name__}, got {shorten(value)}")
    if expected is dict or origin is dict:
        if not isinstance(value, Mapping):
            raise UserError(f"config key {key!r} expects a table, got {shorten(value)}")
        return dict(value)
    if isinstance(expected, type) and not isinstance(value, expected):
        raise UserError(f"config key {key!r} expects {expected.__name__}, got {shorten(value)}")
    return value


def field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def from_dict(cls: type[D], data: Mapping[str, Any], prefix: str = "") -> D:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types raise UserError."""
    if not isinstance(data, Mapping):
        raise UserError(f"config section {prefix.rstrip('.') or 'root'!r} must be a table, got {data!r}")
    types_ = field_types(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in types_:
            raise unknown("config key", prefix + key, [prefix + k for k in types_])
        kwargs[key] = check_type(prefix + key, value, types_[key])
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise UserError(f"config section {prefix.rstrip('.') or 'root'!r}: {e}") from None


def to_dict(obj: Any) -> Any:
    """Plain JSON/TOML-ready dict of a (nested) dataclass; tuples become lists."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    return obj


def set_in(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``dotted='a.b'``, creating tables on the way."""
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"config key {dotted!r}: {part!r} is a value, not a table")
        node = child
    node[leaf] = value


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``'train.lr=3e-4'`` into ``('train.lr', 3e-4)``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"override {text!r} is not of the form section.key=value (e.g. train.lr=3e-4)")
    return key.strip(), parse_value(value.strip())
