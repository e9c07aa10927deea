"""Proportions with confidence intervals that respect clustering (samples nested in datasets)."""

from __future__ import annotations

import numpy as np

from interp_steer.errors import ConfigError


def clustered_proportion(hits, eligible, clusters, *, n_boot: int = 2000, confidence: float = 0.95,
                         seed: int = 0) -> tuple[float, float, float]:
    """``(share, low, high)``: share of ``eligible`` rows that are ``hits``, pooled over rows, with a percentile CI
    from resampling whole clusters with replacement (the ratio ``Σ hits / Σ eligible`` over the drawn clusters)."""
    h, e, g = np.asarray(hits, bool), np.asarray(eligible, bool), np.asarray(clusters)
    if not (h.shape == e.shape == g.shape):
        raise ConfigError(f"clustered_proportion: hits {h.shape}, eligible {e.shape}, clusters {g.shape} differ")
    if not e.any():
        raise ConfigError("clustered_proportion: no eligible rows")
    keys, index = np.unique(g, return_inverse=True)
    num = np.bincount(index, weights=(h & e).astype(float), minlength=len(keys))
    den = np.bincount(index, weights=e.astype(float), minlength=len(keys))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(keys), size=(n_boot, len(keys)))
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = num[draws].sum(1) / den[draws].sum(1)
    alpha = (1 - confidence) / 2
    low, high = np.nanquantile(boot, [alpha, 1 - alpha])
    return float(num.sum() / den.sum()), float(low), float(high)
