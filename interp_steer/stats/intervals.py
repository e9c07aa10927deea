"""One interval function per statistic the project reports (the table is in :mod:`interp_steer.stats`).

Every function returns an :class:`Interval` ``(estimate, low, high)`` (a named tuple, so ``m, lo, hi = ...``
works). The bootstrap ones call the one engine, :func:`~interp_steer.stats.bootstrap.bootstrap`, with its
percentile interval; ``clusters`` (e.g. the dataset of each sample) switches from resampling rows to the
two-level resampling of clusters and rows within them, and the statistic to "each cluster counted once" (the
mean over clusters of the cluster statistic). NaN policy: non-finite values are missing and dropped before
resampling (a difference needs both members of its pair); no value left gives a NaN estimate and interval, one
value a NaN interval (Wilson intervals excepted: they exist for any n ≥ 1).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
from scipy.special import ndtri

from interp_steer.errors import ConfigError
from interp_steer.stats.auc import auc
from interp_steer.stats.bootstrap import Labels, Resample, Values, bootstrap, bootstrap_metric
from interp_steer.stats.weighted import weighted_median

NAN = float("nan")


class Interval(NamedTuple):
    """A point estimate and its confidence interval (NaN where it cannot be computed)."""

    estimate: float
    low: float
    high: float


def _kept(values: Values, clusters: Labels | None) -> tuple[np.ndarray, np.ndarray | None]:
    x = np.asarray(values, dtype=np.float64).ravel()
    if clusters is not None and len(clusters) != len(x):
        raise ConfigError(f"interval: {len(clusters)} cluster labels for {len(x)} values")
    ok = np.isfinite(x)
    return x[ok], None if clusters is None else np.asarray(clusters, dtype=object)[ok]


def _boot(x: np.ndarray, clusters: np.ndarray | None, per_rows: Callable[[Resample, np.ndarray], np.ndarray],
          per_clusters: Callable[[Resample, np.ndarray], np.ndarray], n_boot: int, confidence: float,
          seed: int) -> Interval:
    if len(x) == 0:
        return Interval(NAN, NAN, NAN)
    if clusters is not None and len(set(clusters.tolist())) > 1:
        res = bootstrap({"x": x}, lambda r, d: per_clusters(r, d["x"]), clusters=clusters, n_boot=n_boot,
                        confidence=confidence, seed=seed)
    else:
        res = bootstrap({"x": x}, lambda r, d: per_rows(r, d["x"]), n_boot=n_boot, confidence=confidence, seed=seed)
    return Interval(float(res.estimate[0]), float(res.ci_low[0]), float(res.ci_high[0]))


def mean_interval(values: Values, *, clusters: Labels | None = None, n_boot: int = 2000, confidence: float = 0.95,
                  seed: int = 0) -> Interval:
    """Mean of per-row values (mean slope, mean propensity, KL, accuracy as 0/1, ...), percentile bootstrap over
    rows; with ``clusters``: the mean over clusters of the cluster means, two-level bootstrap."""
    x, g = _kept(values, clusters)
    return _boot(x, g, lambda r, v: r.pooled_mean(v), lambda r, v: r.across_clusters(r.cluster_mean(v)),
                 n_boot, confidence, seed)


def median_interval(values: Values, *, clusters: Labels | None = None, n_boot: int = 2000,
                    confidence: float = 0.95, seed: int = 0) -> Interval:
    """Median of per-row values, percentile bootstrap over rows; with ``clusters``: the median over clusters of the
    cluster medians, two-level bootstrap."""
    x, g = _kept(values, clusters)
    return _boot(x, g, lambda r, v: weighted_median(v, r.weights),
                 lambda r, v: r.across_clusters(r.cluster_median(v), "median"), n_boot, confidence, seed)


def anti_steerable_interval(slopes: Values, *, clusters: Labels | None = None, n_boot: int = 2000,
                            confidence: float = 0.95, seed: int = 0) -> Interval:
    """Anti-steerable fraction = share of per-sample slopes < 0. Samples of one dataset are independent, so
    without ``clusters`` (or with one) the interval is Wilson's score interval (0 of 16 → [0, 0.19], where a
    percentile bootstrap would give [0, 0]); with ``clusters``: the mean over datasets of the dataset fractions,
    two-level percentile bootstrap (as the study)."""
    x, g = _kept(slopes, clusters)
    if g is None or len(set(g.tolist())) <= 1:
        if len(x) == 0:
            return Interval(NAN, NAN, NAN)
        return proportion_interval(float(np.sum(x < 0)), len(x), confidence)
    return mean_interval((x < 0).astype(float), clusters=g, n_boot=n_boot, confidence=confidence, seed=seed)


def paired_difference_interval(a: Values, b: Values, *, clusters: Labels | None = None, n_boot: int = 2000,
                               confidence: float = 0.95, seed: int = 0) -> Interval:
    """Mean of the paired differences ``a − b`` (same samples under two methods / settings), percentile bootstrap
    over pairs (pairs with a missing member dropped); with ``clusters``: mean over clusters, two-level."""
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ConfigError(f"paired_difference_interval: {len(x)} and {len(y)} values do not pair up")
    return mean_interval(x - y, clusters=clusters, n_boot=n_boot, confidence=confidence, seed=seed)


def proportion_interval(successes: float, n: int, confidence: float = 0.95) -> Interval:
    """Share ``successes / n`` of independent binary outcomes with its Wilson score interval (``successes`` may be
    fractional: a tie counts one half). Used where the table declares Wilson; NaN for ``n`` 0."""
    if n <= 0:
        return Interval(NAN, NAN, NAN)
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence={confidence}: use a level strictly between 0 and 1, e.g. 0.95")
    z = float(ndtri(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Interval(float(p), float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def metric_interval(metric: Callable[[np.ndarray], float], n: int, *, strata: Labels | None = None,
                    n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """A statistic of whole rows (AUC, R², Spearman ρ of out-of-fold predictions): ``metric(index)`` on the ``n``
    rows and on bootstrap resamples of row indices, within ``strata`` if given (each stratum keeps its size)."""
    if n < 1:
        return Interval(NAN, NAN, NAN)
    res = bootstrap_metric(metric, n, clusters=strata, resample_clusters=False, n_boot=n_boot,
                           confidence=confidence, seed=seed)
    return Interval(float(res.estimate[0]), float(res.ci_low[0]), float(res.ci_high[0]))


def metric_difference_interval(a: Callable[[np.ndarray], float], b: Callable[[np.ndarray], float], n: int, *,
                               strata: Labels | None = None, n_boot: int = 2000, confidence: float = 0.95,
                               seed: int = 0) -> Interval:
    """``a − b`` of two row statistics on shared resamples (e.g. a predictor's AUC minus the baseline's)."""
    return metric_interval(lambda i: a(i) - b(i), n, strata=strata, n_boot=n_boot, confidence=confidence, seed=seed)


def auc_interval(scores: Values, labels: Values, *, strata: Labels | None = None, n_boot: int = 2000,
                 confidence: float = 0.95, seed: int = 0) -> Interval:
    """AUC (:func:`interp_steer.stats.auc.auc`) of ``scores`` for ``labels`` with a bootstrap over rows (within
    ``strata``); resamples with one class only are undefined and left out (see the engine's NaN policy)."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels).astype(bool)
    if s.shape != y.shape:
        raise ConfigError(f"auc_interval: scores {s.shape} and labels {y.shape} differ in shape")
    return metric_interval(lambda i: auc(s[i], y[i]), len(s), strata=strata, n_boot=n_boot, confidence=confidence,
                           seed=seed)
