"""Deprecated home of the bootstrap engine, kept so old imports work: the engine is
:mod:`interp_steer.stats.bootstrap` (with :mod:`interp_steer.stats.weighted`), the interval of each statistic is in
:mod:`interp_steer.stats.intervals` and the table of which statistic gets which interval in :mod:`interp_steer.stats`.
"""

from __future__ import annotations

import warnings
from typing import Callable, Mapping

import numpy as np

from interp_steer.errors import ConfigError
from interp_steer.stats.bootstrap import (
    METHODS,
    RESULT_COLUMNS,
    BootstrapResult,
    Labels,
    Resample,
    Statistic,
    Values,
    bootstrap,
)
from interp_steer.stats.weighted import (
    weighted_correlation,
    weighted_mean,
    weighted_median,
    weighted_pearson,
    weighted_ranks,
)

__all__ = ["METHODS", "RESULT_COLUMNS", "BootstrapResult", "Labels", "Resample", "Statistic", "Values", "bootstrap",
           "bootstrap_ci", "weighted_correlation", "weighted_mean", "weighted_median", "weighted_pearson",
           "weighted_ranks"]

_SIMPLE: dict[str, Callable[[Resample, np.ndarray], np.ndarray]] = {
    "mean": lambda r, x: r.pooled_mean(x),
    "median": lambda r, x: weighted_median(x, r.weights),
    "fraction_below_zero": lambda r, x: r.pooled_mean((x < 0).astype(float)),
}


def bootstrap_ci(values: Values, statistic: str = "mean", **options) -> BootstrapResult:
    """Deprecated: use :func:`~interp_steer.stats.intervals.mean_interval` / ``median_interval`` /
    ``anti_steerable_interval`` (or :func:`~interp_steer.stats.bootstrap.bootstrap` for a table). I.i.d. bootstrap of
    ``"mean"``, ``"median"`` or ``"fraction_below_zero"`` of finite ``values``; options as :func:`bootstrap`."""
    warnings.warn("interp_steer.evaluation.bootstrap_ci is deprecated; use interp_steer.stats.intervals",
                  DeprecationWarning, stacklevel=2)
    x = np.asarray(values, dtype=float)
    if not np.isfinite(x).all():
        raise ConfigError(f"bootstrap_ci: {int((~np.isfinite(x)).sum())} non-finite value(s); drop them first")
    if statistic not in _SIMPLE:
        raise ConfigError(f"bootstrap_ci: statistic {statistic!r}; use one of {', '.join(_SIMPLE)}")
    fn = _SIMPLE[statistic]

    def stat(r: Resample, d: Mapping[str, np.ndarray]) -> np.ndarray:
        return fn(r, d["x"])

    return bootstrap({"x": x}, stat, names=[statistic], **options)
