"""Weighted statistics of bootstrap resamples: each row of ``weights`` ``[b, n]`` holds how often each value occurs
in one resample, so one call evaluates the statistic for all resamples at once (used by :mod:`.bootstrap`)."""

from __future__ import annotations

import numpy as np

from interp_steer.errors import ConfigError


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Row-wise weighted mean of ``values`` (``[M]`` or ``[b, M]``) with ``weights`` ``[b, M]``, skipping NaN values."""
    values = np.broadcast_to(np.asarray(values, dtype=float), weights.shape)
    ok = np.isfinite(values) & (weights > 0)
    w = np.where(ok, weights, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(ok, values, 0.0) * w).sum(axis=1) / w.sum(axis=1)


def weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Row-wise median of the multiset in which ``values[i]`` occurs ``weights[b, i]`` times (integer weights;
    the mean of the two middle elements for an even total), skipping NaN values; NaN for an empty row."""
    weights = np.asarray(weights, dtype=float)
    values = np.broadcast_to(np.asarray(values, dtype=float), weights.shape)
    ok = np.isfinite(values) & (weights > 0)
    v = np.where(ok, values, np.inf)
    order = np.argsort(v, axis=1, kind="stable")
    v = np.take_along_axis(v, order, axis=1)
    cum = np.cumsum(np.take_along_axis(np.where(ok, weights, 0.0), order, axis=1), axis=1)
    total = cum[:, -1]
    last = weights.shape[1] - 1
    lo = np.minimum((cum < np.floor((total + 1) / 2)[:, None]).sum(axis=1), last)
    hi = np.minimum((cum < (np.floor(total / 2) + 1)[:, None]).sum(axis=1), last)
    rows = np.arange(weights.shape[0])
    with np.errstate(invalid="ignore"):
        median = (v[rows, lo] + v[rows, hi]) / 2
    return np.where(total > 0, median, np.nan)


def weighted_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Row-wise mid-ranks in the weighted multiset: ``W(< v) + (W(= v) + 1) / 2`` for each value ``v``."""
    weights = np.asarray(weights, dtype=float)
    values = np.broadcast_to(np.asarray(values, dtype=float), weights.shape)
    b, m = weights.shape
    order = np.argsort(values, axis=1, kind="stable")
    v = np.take_along_axis(values, order, axis=1)
    w = np.take_along_axis(weights, order, axis=1)
    new = np.ones((b, m), dtype=bool)
    new[:, 1:] = v[:, 1:] != v[:, :-1]
    group = (np.cumsum(new, axis=1) - 1 + (np.arange(b) * m)[:, None]).ravel()
    before = (np.cumsum(w, axis=1) - w).ravel()
    totals = np.bincount(group, weights=w.ravel(), minlength=b * m)
    start = np.zeros(b * m)
    start[group[new.ravel()]] = before[new.ravel()]
    ranks_sorted = (start[group] + (totals[group] + 1) / 2).reshape(b, m)
    ranks = np.empty_like(ranks_sorted)
    np.put_along_axis(ranks, order, ranks_sorted, axis=1)
    return ranks


def weighted_pearson(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Row-wise weighted Pearson correlation; NaN where either variable is constant in the row."""
    weights = np.asarray(weights, dtype=float)
    x = np.broadcast_to(np.asarray(x, dtype=float), weights.shape)
    y = np.broadcast_to(np.asarray(y, dtype=float), weights.shape)
    total = weights.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = x - (weights * x).sum(axis=1, keepdims=True) / total
        dy = y - (weights * y).sum(axis=1, keepdims=True) / total
        sxx, syy, sxy = ((weights * dx * dx).sum(1), (weights * dy * dy).sum(1), (weights * dx * dy).sum(1))
        scale = np.sqrt(sxx * syy)
        return np.where(scale > 1e-12 * np.maximum(sxx + syy, 1e-300), sxy / scale, np.nan)


def weighted_correlation(x: np.ndarray, y: np.ndarray, weights: np.ndarray, method: str = "pearson") -> np.ndarray:
    """Row-wise weighted Pearson or Spearman (Pearson of weighted mid-ranks) correlation; NaN values dropped."""
    weights = np.asarray(weights, dtype=float)
    x = np.broadcast_to(np.asarray(x, dtype=float), weights.shape)
    y = np.broadcast_to(np.asarray(y, dtype=float), weights.shape)
    ok = np.isfinite(x) & np.isfinite(y)
    weights = np.where(ok, weights, 0.0)
    x, y = np.where(ok, x, 0.0), np.where(ok, y, 0.0)
    if method == "spearman":
        x, y = weighted_ranks(np.where(ok, x, np.inf), weights), weighted_ranks(np.where(ok, y, np.inf), weights)
        x, y = np.where(ok, x, 0.0), np.where(ok, y, 0.0)
    elif method != "pearson":
        raise ConfigError(f"correlation method {method!r}: use 'pearson' or 'spearman'")
    return weighted_pearson(x, y, weights)

