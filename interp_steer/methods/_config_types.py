"""Type checks of config values read from JSON or dicts, before the typed dataclass constructor sees them.

A config file with ``"batch_size": 2.5`` or ``"read_position": "middle"`` is a plausible user mistake; it
gets a one-line ConfigError naming the field here instead of a type-checker error from the constructor.
"""

from __future__ import annotations

import types
import typing
from dataclasses import fields
from typing import Any, Literal, Mapping

from interp_steer.errors import ConfigError


def type_name(annotation: Any) -> str:
    """A short spelling of a field annotation: ``int|none``, ``answer|last``, ``float``."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "|".join(str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return "|".join(type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "none"
    return getattr(annotation, "__name__", str(annotation))


def value_matches(annotation: Any, value: Any) -> bool:
    """Whether ``value`` fits ``annotation`` (unions, ``Literal``, ``None``, ``bool``, ``int``, ``float``, ``str``;
    ``int`` counts as ``float`` and ``bool`` as neither). Other annotations accept any value."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(value_matches(option, value) for option in typing.get_args(annotation))
    if origin is Literal:
        return any(value == choice and type(value) is type(choice) for choice in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    return True


def check_field_types(config_class: type, data: Mapping[str, Any]) -> None:
    """ConfigError naming the first field of ``data`` whose value does not fit ``config_class``'s annotation."""
    hints = typing.get_type_hints(config_class)
    for f in fields(config_class):
        if f.name in data and not value_matches(hints[f.name], data[f.name]):
            raise ConfigError(f"{config_class.__name__}.{f.name} expects {type_name(hints[f.name])}, got {data[f.name]!r}")
