"""The one validation style of every config: checks called from ``__post_init__`` that raise a one-line
:class:`~interp_steer.errors.ConfigError` naming the command-line option, e.g. ``--n-test must be ≥ 2 (got 1)``.

The option is the config class's :meth:`~interp_steer.config.base.Config.option_name` of the field, so the CLI
never re-checks a value its config checks, and a library caller reads the same message. :func:`check_field_types`
type-checks values read from JSON or dicts before the dataclass constructor sees them (a ``"batch_size": 2.5`` in
a file gets a one-line error naming the field instead of a type-checker error from the constructor).
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import fields
from typing import Any, Iterable, Literal, Mapping

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
        return is_int(value)
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


def is_int(value: Any) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """An ``int`` or ``float`` (not a ``bool``) that is finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ------------------------------------------------------------------ checks naming the option (job configs)
def _option(config: Any, name: str) -> str:
    option_label = getattr(type(config), "option_label", None)
    return option_label(name) if option_label else "--" + name.replace("_", "-")


def require_int(config: Any, name: str, minimum: int = 1, *, optional: bool = False, zero_means: str | None = None) -> None:
    """Field ``name`` is an int ≥ ``minimum``; ``optional``: ``None`` is allowed too. ``zero_means``: the command line
    spells ``None`` as 0 with this meaning (e.g. ``"all"``), which the message mentions; it implies ``optional``."""
    value = getattr(config, name)
    if value is None and (optional or zero_means is not None):
        return
    if not is_int(value) or value < minimum:
        hint = f" or 0 ({zero_means})" if zero_means else ""
        raise ConfigError(f"{_option(config, name)} must be an integer ≥ {minimum}{hint} (got {value!r})")


def require_number(config: Any, name: str, *, minimum: float | None = None, positive: bool = False,
                   nonzero: bool = False, optional: bool = False, units: str = "") -> None:
    """Field ``name`` is a finite number (``positive``: > 0; ``minimum``: ≥ it; ``nonzero``: ≠ 0; ``optional``:
    ``None`` allowed)."""
    value = getattr(config, name)
    if value is None and optional:
        return
    ok = is_finite_number(value) and (not positive or value > 0) and (minimum is None or value >= minimum)
    ok = ok and (not nonzero or value != 0)
    if not ok:
        kind = ("a positive" if positive else f"a number ≥ {minimum:g}" if minimum is not None
                else "a non-zero" if nonzero else "a finite")
        noun = "" if minimum is not None and not positive else " number"
        raise ConfigError(f"{_option(config, name)} must be {kind}{noun}{units} (got {value!r})")


def require_fraction(config: Any, name: str) -> None:
    """Field ``name`` is a share strictly between 0 and 1 (e.g. ``--test-fraction``)."""
    value = getattr(config, name)
    if not (is_finite_number(value) and 0.0 < value < 1.0):
        raise ConfigError(f"{_option(config, name)} must be strictly between 0 and 1 (got {value!r})")


def require_choice(config: Any, name: str, choices: Iterable[Any]) -> None:
    """Field ``name`` is one of ``choices``."""
    value, choices = getattr(config, name), list(choices)
    if value not in choices:
        raise ConfigError(f"{_option(config, name)} {value!r}: use {' or '.join(map(str, choices))}")


def require_multipliers(config: Any, name: str = "multipliers", *, minimum: int = 2, zero: bool = False,
                        positive: bool = False, why_zero: str = "the unsteered reference") -> list[float]:
    """Field ``name`` holds ≥ ``minimum`` distinct finite multipliers (``zero``: 0 among them; ``positive``: one
    > 0); stores them as floats and returns them."""
    option = _option(config, name)
    try:
        values = [float(m) for m in getattr(config, name)]
    except (TypeError, ValueError):
        raise ConfigError(f"{option} must be numbers (got {getattr(config, name)!r})") from None
    setattr(config, name, values)
    if not all(math.isfinite(m) for m in values):
        raise ConfigError(f"{option} must be finite numbers (got {values})")
    if len(values) < minimum or len(set(values)) != len(values):
        raise ConfigError(f"{option} needs ≥ {minimum} distinct values (got {values})")
    if zero and 0.0 not in values:
        raise ConfigError(f"{option} needs values including 0 ({why_zero}) (got {values})")
    if positive and not any(m > 0 for m in values):
        raise ConfigError(f"{option} needs at least one positive multiplier (got {values})")
    return values


# ------------------------------------------------------------------ checks naming Class.field (method configs)
def check_positive_int(cls: str, name: str, value: Any) -> None:
    if not is_int(value) or value < 1:
        raise ConfigError(f"{cls}.{name} must be a positive int, got {value!r}")


def check_non_negative_int(cls: str, name: str, value: Any) -> None:
    if not is_int(value) or value < 0:
        raise ConfigError(f"{cls}.{name} must be a non-negative int, got {value!r}")


def check_number(cls: str, name: str, value: Any, *, positive: bool = False, non_negative: bool = False) -> None:
    ok = is_finite_number(value) and (not positive or value > 0) and (not non_negative or value >= 0)
    if not ok:
        kind = "positive " if positive else "non-negative " if non_negative else ""
        raise ConfigError(f"{cls}.{name} must be a {kind}finite number, got {value!r}")
