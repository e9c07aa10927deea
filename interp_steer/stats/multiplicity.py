"""Family-wise (Holm 1979) and false-discovery-rate (Benjamini–Hochberg 1995) adjusted p-values."""

from __future__ import annotations

import numpy as np

from interp_steer.errors import ConfigError


def _check(p_values) -> np.ndarray:
    p = np.asarray(p_values, dtype=float).ravel()
    if p.size == 0:
        raise ConfigError("multiplicity adjustment: no p-values given")
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ConfigError(f"multiplicity adjustment: p-values must be finite and in [0, 1], got {p.tolist()}")
    return p


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values (same order as the input): reject H_i at level α iff adjusted ≤ α.

    Sorted ascending, ``adj_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j))`` (1-based ranks).
    """
    p = _check(p_values)
    m = p.size
    order = np.argsort(p, kind="mergesort")
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini–Hochberg step-up adjusted p-values (q-values under independence / PRDS), input order.

    Sorted ascending, ``adj_(i) = min_{j ≥ i} min(1, m p_(j) / j)``.
    """
    p = _check(p_values)
    m = p.size
    order = np.argsort(p, kind="mergesort")
    scaled = p[order] * m / np.arange(1, m + 1)
    stepped = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted
