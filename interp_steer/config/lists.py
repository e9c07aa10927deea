"""The one parser of the comma lists the command lines take: numbers (``"-2,0,2"``), integers and layer specs.

Every parser raises a one-line :class:`~interp_steer.errors.ConfigError` naming the option; :func:`argparse_type`
adapts one to an ``argparse`` ``type=`` (the study scripts).
"""

from __future__ import annotations

import argparse
import math
from typing import Any, Callable

from interp_steer.errors import ConfigError

LAYER_HINT = "expected e.g. '12', '3,6,12', '3-12' or 'all'"


def check_layer_list(layers: list[int], option: str = "--layers") -> list[int]:
    """Resolved layers: at least one, each ≥ 0 and given once; a ConfigError naming the option otherwise."""
    if not layers:
        raise ConfigError(f"{option}: no layers given ({LAYER_HINT})")
    if min(layers) < 0:
        raise ConfigError(f"{option} must be non-negative layers (got {layers})")
    repeated = sorted({layer for layer in layers if layers.count(layer) > 1})
    if repeated:
        raise ConfigError(f"{option} lists a layer more than once: {repeated} (got {layers})")
    return layers


def parse_float_list(text: str, option: str = "--multipliers") -> list[float]:
    """``"-2,-1,0,1,2"`` → finite floats; a ConfigError naming the option otherwise (also for NaN / inf / none)."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{option}: expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise ConfigError(f"{option}: no values given")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise ConfigError(f"{option}: values must be finite numbers, got {bad[0]} in {text!r}")
    return values


def parse_int_list(text: str, option: str) -> list[int]:
    """``"812,33"`` → ints; a ConfigError naming the option otherwise."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{option}: expected comma-separated integers, got {text!r}") from None
    if not values:
        raise ConfigError(f"{option}: no values given")
    return values


def parse_name_list(text: str) -> list[str]:
    """``"a, b,,c"`` → ``["a", "b", "c"]`` (stripped, empty items dropped)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_layers(text: str, n_layers: int | None, option: str = "--layers") -> list[int]:
    """``"3,6,12"``, ``"all"`` or a range ``"3-12"`` → layer ints, each at most once, checked against the model.

    ``n_layers=None`` checks the syntax only (before a model is loaded; ``"all"`` then gives ``[]``). Empty
    specs, reversed ranges (``"12-6"``) and repeated layers (``"6,6"``, ``"3-6,5"``) are errors.
    """
    text = text.strip()
    if text == "all":
        return list(range(n_layers)) if n_layers is not None else []
    layers: list[int] = []
    for part in parse_name_list(text):
        try:
            if "-" in part[1:]:
                lo_text, hi_text = part[0] + part[1:].split("-", 1)[0], part[1:].split("-", 1)[1]
                lo, hi = int(lo_text), int(hi_text)
                if hi < lo:
                    raise ConfigError(f"{option}: range {part!r} is reversed; write '{hi}-{lo}'")
                layers.extend(range(lo, hi + 1))
            else:
                layers.append(int(part))
        except ValueError:
            raise ConfigError(f"{option}: {LAYER_HINT}, got {text!r}") from None
    if not layers:
        raise ConfigError(f"{option}: no layers given ({LAYER_HINT})")
    repeated = sorted({layer for layer in layers if layers.count(layer) > 1})
    if repeated:
        raise ConfigError(f"{option}: layer(s) {repeated} given more than once in {text!r}")
    if n_layers is not None:
        bad = [layer for layer in layers if not 0 <= layer < n_layers]
        if bad:
            raise ConfigError(f"{option}: layer(s) {bad} out of range for a {n_layers}-layer model")
    return layers


def number_list_text(values: Any) -> Any:
    """A list or tuple of numbers as the comma string the command lines parse (``[-2.0, 0.0, 2.0]`` → ``"-2,0,2"``);
    any other value unchanged."""
    if isinstance(values, (list, tuple)) and values and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                            for v in values):
        return ",".join(f"{v:g}" for v in values)
    return values


def argparse_type(parser: Callable[[str, str], Any], option: str) -> Callable[[str], Any]:
    """``parser`` as an argparse ``type=``: a ConfigError becomes argparse's usage error."""
    def parse(text: str) -> Any:
        try:
            return parser(text, option)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = getattr(parser, "__name__", "value")
    return parse


def parse_number_list(text: str) -> list[float]:
    """``"-1.5,0,1.5"`` → ``[-1.5, 0.0, 1.5]`` as an argparse ``type=`` (the study scripts' ``--multipliers``)."""
    return argparse_type(parse_float_list, "--multipliers")(text)
