"""Parsing helpers shared by CLI commands (comma lists, layer lists)."""

from __future__ import annotations

from interp_steer.errors import ConfigError


def parse_float_list(text: str, option: str) -> list[float]:
    """``"-2,-1,0,1,2"`` → floats; a ConfigError naming the option otherwise."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{option}: expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise ConfigError(f"{option}: no values given")
    return values


def parse_layers(text: str, n_layers: int, option: str = "--layers") -> list[int]:
    """``"3,6,12"``, ``"all"`` or a range ``"3-12"`` → layer ints, checked against the model."""
    text = text.strip()
    if text == "all":
        return list(range(n_layers))
    layers: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                lo, hi = part.split("-")
                layers.extend(range(int(lo), int(hi) + 1))
            elif part.strip():
                layers.append(int(part))
    except ValueError:
        raise ConfigError(f"{option}: expected e.g. '12', '3,6,12', '3-12' or 'all', got {text!r}") from None
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad:
        raise ConfigError(f"{option}: layer(s) {bad} out of range for a {n_layers}-layer model")
    return layers
