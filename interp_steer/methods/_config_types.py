"""Type checks of config values read from JSON or dicts, before the typed dataclass constructor sees them.

A config file with ``"batch_size": 2.5`` or ``"read_position": "middle"`` is a plausible user mistake; it
gets a one-line ConfigError naming the field here instead of a type-checker error from the constructor.
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import asdict, fields
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


class JsonConfig:
    """``to_dict`` / ``to_json`` / ``from_dict`` / ``from_json`` for a config dataclass (unknown keys rejected)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} field(s) {unknown}; valid fields: {sorted(known)}")
        check_field_types(cls, data)  # type: ignore[arg-type]
        return cls(**data)

    @classmethod
    def from_json(cls, text: str):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{cls.__name__}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__}: expected a JSON object, got a JSON {type(data).__name__}")
        return cls.from_dict(data)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive_int(cls: str, name: str, value: Any) -> None:
    if not is_int(value) or value < 1:
        raise ConfigError(f"{cls}.{name} must be a positive int, got {value!r}")


def check_non_negative_int(cls: str, name: str, value: Any) -> None:
    if not is_int(value) or value < 0:
        raise ConfigError(f"{cls}.{name} must be a non-negative int, got {value!r}")


def check_number(cls: str, name: str, value: Any, *, positive: bool = False, non_negative: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (not positive or value > 0) and (not non_negative or value >= 0)
    if not ok:
        kind = "positive " if positive else "non-negative " if non_negative else ""
        raise ConfigError(f"{cls}.{name} must be a {kind}finite number, got {value!r}")
