"""Argument checks shared by the API and the CLI: each raises a one-line ``ConfigError`` naming the argument.

``name`` is what the message calls the argument: a keyword (``"multipliers"``) from the API, an option
(``"--multipliers"``) from the CLI. This module imports nothing of the package but :mod:`interp_steer.errors`,
so every layer may use it.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Iterable, Sequence

from interp_steer.errors import ConfigError


def require_finite(value: float, name: str) -> float:
    """``value`` as a float; ``ConfigError`` if it is not a number or is NaN / ±inf."""
    if isinstance(value, bool) or not isinstance(value, Real):
        try:
            value = float(value)  # 0-d tensors and numpy scalars
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(float(value)):
        raise ConfigError(f"{name}: must be a finite number, got {float(value)}")
    return float(value)


def require_finite_all(values: Iterable[float], name: str) -> list[float]:
    """Every value finite (see :func:`require_finite`); the message shows the offending entry and its index."""
    out = []
    for index, value in enumerate(values):
        try:
            out.append(require_finite(value, name))
        except ConfigError as exc:
            raise ConfigError(f"{exc} (entry {index})") from None
    return out


def require_count(value: int, name: str, *, minimum: int = 1, zero_means: str | None = None) -> int:
    """An integer ≥ ``minimum``. ``zero_means`` (e.g. ``"all"``) documents a 0 sentinel: then 0 is allowed too."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if zero_means is not None and value == 0:
        return value
    if value < minimum:
        sentinel = f" (or 0 for {zero_means})" if zero_means is not None else ""
        raise ConfigError(f"{name}: must be ≥ {minimum}{sentinel}, got {value}")
    return value


def require_unique(values: Sequence, name: str) -> None:
    """No value twice (layers, hook names, sample ids); the message names the first repeated one."""
    seen = set()
    for value in values:
        if value in seen:
            raise ConfigError(f"{name}: {value!r} is given more than once in {list(values)}")
        seen.add(value)


def check_device(device, name: str = "device") -> str:
    """A torch device string that exists on this machine (``cpu``, ``cuda``, ``cuda:N``, ``mps``, …)."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{name} {device!r}: not a torch device; use e.g. cpu, cuda, cuda:0 or mps") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{name} {device!r}: CUDA is not available on this machine; use cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ConfigError(f"{name} {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif parsed.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"{name} {device!r}: MPS is not available on this machine; use cpu")
    elif parsed.type != "cpu":
        raise ConfigError(f"{name} {device!r}: unsupported device type {parsed.type!r}; use cpu, cuda or mps")
    return str(device)
