"""Steerable / anti-steerable / insensitive groups with a margin: a bootstrap CI of each sample's slope.

A sample's steerability is the least-squares slope of its propensity on the multiplier. With a handful of
multipliers per sample the slope is uncertain, so the sign alone over-counts both tails. Here each sample gets a
percentile bootstrap CI of its slope:

* ``residuals`` (default): refit ``y* = ŷ + e*``, the OLS fit plus residuals drawn with replacement (rescaled by
  ``sqrt(n / (n − 2))`` so their spread is not biased low), ``n_boot`` times;
* ``multipliers``: draw the (multiplier, propensity) points with replacement and refit (draws with a single
  distinct multiplier are redrawn).

Rule (:data:`GROUP_RULE`): ``steerable`` if the CI lies above 0, ``anti-steerable`` if below 0, else
``insensitive``. :func:`group_sizes` and :func:`describe_rule` give the counts and the sentence every report
prints.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from interp_steer.errors import ConfigError

GROUPS = ("steerable", "anti-steerable", "insensitive")
GROUP_RULE = ("steerable: the {level:.0%} bootstrap CI of the sample's slope lies above 0; anti-steerable: it lies "
              "below 0; insensitive: it contains 0 ({method} bootstrap, {n_boot} draws, {n_mult} multipliers per sample)")
SLOPE_CI_COLUMNS = ["sample_id", "slope", "ci_low", "ci_high", "n_points", "group"]


def _slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """OLS slopes of each row of ``y`` ([draws, n]) on the matching row of ``x`` (same shape, or [n])."""
    x = np.broadcast_to(x, y.shape)
    dx = x - x.mean(axis=-1, keepdims=True)
    dy = y - y.mean(axis=-1, keepdims=True)
    sxx = (dx * dx).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (dx * dy).sum(axis=-1) / sxx


def bootstrap_slope(
    x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float], *, method: str = "residuals",
    n_boot: int = 2000, level: float = 0.95, rng: np.random.Generator | None = None,
) -> tuple[float, float, float]:
    """``(slope, ci_low, ci_high)`` of one sample's propensity curve (see module doc)."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ConfigError(f"bootstrap_slope: x and y must be 1-d of equal length, got {xa.shape} and {ya.shape}")
    if len(np.unique(xa)) < 3:
        raise ConfigError(f"bootstrap_slope needs at least 3 distinct multipliers, got {sorted(set(xa.tolist()))}")
    if not 0 < level < 1:
        raise ConfigError(f"level must be in (0, 1), got {level}")
    if n_boot < 100:
        raise ConfigError(f"n_boot must be ≥ 100, got {n_boot}")
    rng = rng if rng is not None else np.random.default_rng(0)
    n = len(xa)
    slope = float(_slopes(xa, ya[None, :])[0])
    if method == "residuals":
        fitted = ya.mean() + slope * (xa - xa.mean())
        residuals = (ya - fitted) * np.sqrt(n / (n - 2))
        draws = fitted[None, :] + residuals[rng.integers(0, n, size=(n_boot, n))]
        boot = _slopes(xa, draws)
    elif method == "multipliers":
        index = rng.integers(0, n, size=(n_boot, n))
        bad = np.array([len(np.unique(xa[i])) < 2 for i in index])
        while bad.any():
            index[bad] = rng.integers(0, n, size=(int(bad.sum()), n))
            bad = np.array([len(np.unique(xa[i])) < 2 for i in index])
        boot = _slopes(xa[index], ya[index])
    else:
        raise ConfigError(f"method must be 'residuals' or 'multipliers', got {method!r}")
    alpha = (1 - level) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    return slope, float(low), float(high)


def slope_intervals(
    propensities: pd.DataFrame, *, method: str = "residuals", n_boot: int = 2000,
    level: float = 0.95, seed: int = 0, x: str = "multiplier", y: str = "propensity", key: str = "sample_id",
) -> pd.DataFrame:
    """Per sample (``key``): slope, bootstrap CI and group by :data:`GROUP_RULE` (columns :data:`SLOPE_CI_COLUMNS`).

    The rule is stored in ``.attrs["rule"]``."""
    missing = [c for c in (key, x, y) if c not in propensities.columns]
    if missing:
        raise ConfigError(f"slope_intervals: propensity table lacks columns {missing}")
    if propensities.empty:
        raise ConfigError("slope_intervals: the propensity table is empty")
    if not np.isfinite(propensities[[x, y]].to_numpy(dtype=float)).all():
        raise ConfigError("slope_intervals: non-finite multipliers or propensities")
    rng = np.random.default_rng(seed)
    records = []
    for sample_id, part in propensities.groupby(key, sort=False):
        slope, low, high = bootstrap_slope(part[x].to_numpy(), part[y].to_numpy(), method=method, n_boot=n_boot,
                                           level=level, rng=rng)
        group = "steerable" if low > 0 else "anti-steerable" if high < 0 else "insensitive"
        records.append({"sample_id": sample_id, "slope": slope, "ci_low": low, "ci_high": high,
                        "n_points": len(part), "group": group})
    out = pd.DataFrame.from_records(records, columns=SLOPE_CI_COLUMNS)
    out["group"] = pd.Categorical(out["group"], categories=list(GROUPS))
    n_mult = int(propensities.groupby(key)[x].nunique().median())
    out.attrs["rule"] = describe_rule(method=method, n_boot=n_boot, level=level, n_mult=n_mult)
    return out


def describe_rule(*, method: str, n_boot: int, level: float, n_mult: int) -> str:
    """The group rule as one sentence (for reports)."""
    return GROUP_RULE.format(level=level, method=method, n_boot=n_boot, n_mult=n_mult)


def group_sizes(groups: pd.Series | np.ndarray | Sequence[str]) -> dict[str, int]:
    """Count per group, in :data:`GROUPS` order (zeros included)."""
    counts = pd.Series(np.asarray(groups, dtype=str)).value_counts()
    return {g: int(counts.get(g, 0)) for g in GROUPS}
