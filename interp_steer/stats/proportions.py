"""Proportions with confidence intervals that respect clustering (samples nested in datasets)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from interp_steer.errors import ConfigError
from interp_steer.stats.bootstrap import Resample, bootstrap


def clustered_proportion(hits, eligible, clusters, *, n_boot: int = 2000, confidence: float = 0.95,
                         seed: int = 0) -> tuple[float, float, float]:
    """``(share, low, high)``: share of ``eligible`` rows that are ``hits``, pooled over rows, with a percentile CI
    from resampling whole clusters with replacement (the ratio ``Σ hits / Σ eligible`` over the drawn clusters;
    the engine of :mod:`interp_steer.stats.bootstrap`)."""
    h, e, g = np.asarray(hits, bool), np.asarray(eligible, bool), np.asarray(clusters)
    if not (h.shape == e.shape == g.shape):
        raise ConfigError(f"clustered_proportion: hits {h.shape}, eligible {e.shape}, clusters {g.shape} differ")
    if not e.any():
        raise ConfigError("clustered_proportion: no eligible rows")
    def share(r: Resample, d: Mapping[str, np.ndarray]) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (r.weights @ d["hit"]) / (r.weights @ d["eligible"])

    res = bootstrap({"hit": (h & e).astype(float), "eligible": e.astype(float)}, share, clusters=g, n_boot=n_boot,
                    confidence=confidence, seed=seed, resample_within=False)
    return float(res.estimate[0]), float(res.ci_low[0]), float(res.ci_high[0])
