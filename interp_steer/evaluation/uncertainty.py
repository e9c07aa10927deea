"""Bootstrap 95% confidence intervals for the study's headline statistics, vectorised with numpy.

**Resamples as multiplicities.** A bootstrap resample is represented by how often each original sample occurs in
it: a weight matrix ``[n_boot, n_samples]`` of integer counts (a :class:`Resample`), so every statistic is a
weighted statistic evaluated for all resamples at once (weighted means, medians, least squares, correlations).
The point estimate is the same code on the all-ones resample.

**Two-level (hierarchical / cluster) bootstrap.** Samples belong to clusters (datasets). One resample draws
``K`` datasets with replacement (counts ``c_k`` ~ Multinomial(K, 1/K)) and then, within each drawn dataset,
``c_k · n_k`` samples with replacement from its ``n_k`` samples (Multinomial(c_k · n_k, 1/n_k), the same as
``c_k`` independent within-dataset resamples). ``resample_within=False`` keeps each drawn dataset whole (the plain
cluster bootstrap); with one cluster the scheme is the ordinary i.i.d. bootstrap. Resampling both levels counts
the within-dataset variance slightly more than once, so its intervals err on the wide side when datasets differ
little; resampling datasets only (``resample_within=False``) is the textbook cluster bootstrap.

**Intervals.** ``method="percentile"``: the ``α/2`` and ``1 − α/2`` quantiles of the bootstrap distribution
(linear interpolation, as ``numpy.percentile``). ``method="bca"``: bias-corrected and accelerated (Efron 1987),
the bias from the share of resamples below the estimate, the acceleration from a jackknife over the resampling
units (datasets when datasets are resampled, else samples), the formulas of ``scipy.stats.bootstrap``.
Resamples whose statistic is undefined (NaN, e.g. a correlation of a constant) are left out of the quantiles.

Seeds are explicit (``seed``, a ``numpy.random.Generator`` seed); the same call gives the same interval.
An across-dataset interval rests on the number of datasets (``n_datasets`` in every table): with fewer than
about ten datasets it is a rough guide only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Sequence, TypeAlias

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from interp_steer.errors import ConfigError

Values: TypeAlias = Sequence[float] | np.ndarray | pd.Series
"""A 1-d run of numbers as the public functions take it: a list, an array or a DataFrame column."""
Labels: TypeAlias = Sequence | np.ndarray | pd.Series
"""One label per value (e.g. the dataset of each sample), as a list, an array or a DataFrame column."""

METHODS = ("percentile", "bca")
RESULT_COLUMNS = ["statistic", "estimate", "ci_low", "ci_high", "n_samples", "n_datasets", "n_boot", "method", "confidence"]
"""Columns of every tidy interval table (grouping columns come first)."""


@dataclass(frozen=True)
class Resample:
    """A batch of resamples: ``weights[b, i]`` = multiplicity of sample ``i`` (samples sorted by cluster),
    ``cluster_counts[b, k]`` = multiplicity of cluster ``k``; ``starts`` = first sample index of each cluster."""

    weights: np.ndarray
    cluster_counts: np.ndarray
    starts: np.ndarray

    @property
    def n_resamples(self) -> int:
        return int(self.weights.shape[0])

    def cluster_sum(self, x: np.ndarray) -> np.ndarray:
        """Weighted sum of ``x`` ``[n_samples]`` within each cluster: ``[n_resamples, n_clusters]``."""
        return np.add.reduceat(self.weights * np.asarray(x, dtype=float), self.starts, axis=1)

    def cluster_mean(self, x: np.ndarray) -> np.ndarray:
        """Weighted mean of ``x`` within each cluster (NaN for a cluster not drawn)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.cluster_sum(x) / np.add.reduceat(self.weights, self.starts, axis=1)

    def cluster_nanmeans(self, x: np.ndarray) -> np.ndarray:
        """Weighted means of the columns of ``x`` ``[n_samples, m]`` within each cluster, NaN entries skipped:
        ``[n_resamples, n_clusters, m]`` (one small matrix product per cluster)."""
        x = np.asarray(x, dtype=float)
        ok = np.isfinite(x)
        values, present = np.where(ok, x, 0.0), ok.astype(float)
        bounds = list(self.starts) + [self.weights.shape[1]]
        sums = np.stack([self.weights[:, lo:hi] @ values[lo:hi] for lo, hi in zip(bounds, bounds[1:])], axis=1)
        counts = np.stack([self.weights[:, lo:hi] @ present[lo:hi] for lo, hi in zip(bounds, bounds[1:])], axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums / counts

    def cluster_median(self, x: np.ndarray) -> np.ndarray:
        """Weighted median of ``x`` within each cluster (the ordinary median of the resampled multiset; NaN values
        and clusters not drawn give NaN / are skipped)."""
        x = np.asarray(x, dtype=float)
        n, k = self.weights.shape[1], len(self.starts)
        cluster_of = np.repeat(np.arange(k), np.diff(np.concatenate([self.starts, [n]])))
        order = np.lexsort((np.where(np.isfinite(x), x, np.inf), cluster_of))  # by cluster, then value
        v = x[order]
        w = np.where(np.isfinite(v), self.weights[:, order], 0.0)
        cum = np.cumsum(w, axis=1)
        before = (cum - w)[:, self.starts]  # [b, K] weight before each cluster
        total = np.add.reduceat(w, self.starts, axis=1)
        rows = self.weights.shape[0]
        big = cum[:, -1].max() + 1.0
        flat = (cum + big * np.arange(rows)[:, None]).ravel()
        def at(position: np.ndarray) -> np.ndarray:
            target = (before + position + big * np.arange(rows)[:, None]).ravel()
            index = np.minimum(np.searchsorted(flat, target - 0.5, side="left"), rows * n - 1) % n
            return v[index].reshape(rows, k)
        with np.errstate(invalid="ignore"):
            median = (at(np.floor((total + 1) / 2)) + at(np.floor(total / 2) + 1)) / 2
        return np.where(total > 0, median, np.nan)

    def pooled_mean(self, x: np.ndarray) -> np.ndarray:
        """Weighted mean of ``x`` over all samples: ``[n_resamples]``."""
        return (self.weights @ np.asarray(x, dtype=float)) / self.weights.sum(axis=1)

    def across_clusters(self, per_cluster: np.ndarray, how: str = "mean") -> np.ndarray:
        """Mean or median over clusters of a per-cluster statistic ``[n_resamples, n_clusters]``, each cluster counted
        as often as it was drawn; clusters whose statistic is NaN are skipped."""
        if how == "mean":
            return weighted_mean(per_cluster, self.cluster_counts)
        if how == "median":
            return weighted_median(per_cluster, self.cluster_counts)
        raise ConfigError(f"across_clusters: how={how!r}; use 'mean' or 'median'")


Statistic = Callable[[Resample, Mapping[str, np.ndarray]], np.ndarray]
"""``statistic(resample, data) -> [n_resamples]`` or ``[n_resamples, n_statistics]``; ``data``: columns sorted by cluster."""


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


def _cluster_layout(clusters: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(order, starts, labels)``: a stable sort of the samples by cluster, each cluster's first index, its label."""
    if clusters is None:
        return np.arange(n), np.array([0]), np.array(["(all)"], dtype=object)
    codes, labels = pd.factorize(pd.Series(clusters), sort=True)
    if (codes < 0).any():
        raise ConfigError("bootstrap: a cluster label is missing (NaN); give every sample its dataset")
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=len(labels))
    return order, np.concatenate([[0], np.cumsum(sizes)[:-1]]), np.asarray(labels, dtype=object)


def _draw(sizes: np.ndarray, n_boot: int, rng: np.random.Generator, resample_clusters: bool,
          resample_within: bool) -> Resample:
    """One batch of two-level resamples (see the module docstring)."""
    k, n = len(sizes), int(sizes.sum())
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    if resample_clusters and k > 1:
        chosen = rng.integers(0, k, size=(n_boot, k))  # [b, K] the clusters drawn into each slot
    else:
        chosen = np.broadcast_to(np.arange(k), (n_boot, k))
    rows = np.broadcast_to(np.arange(n_boot)[:, None], (n_boot, k))
    counts = np.bincount((rows * k + chosen).ravel(), minlength=n_boot * k).reshape(n_boot, k)
    if resample_within:
        slot = chosen.ravel()
        draws = np.repeat(slot, sizes[slot])  # each drawn cluster contributes n_k draws from its own samples
        row_of = np.repeat(rows.ravel(), sizes[slot])
        index = starts[draws] + np.floor(rng.random(len(draws)) * sizes[draws]).astype(np.int64)
        weights = np.bincount(row_of * n + index, minlength=n_boot * n).reshape(n_boot, n).astype(float)
    else:
        weights = counts[:, np.repeat(np.arange(k), sizes)].astype(float)
    return Resample(weights, counts.astype(float), starts)


def _jackknife(sizes: np.ndarray, by_cluster: bool, chunk: int) -> Iterator[Resample]:
    """Leave-one-out resamples: one cluster left out per row (``by_cluster``), else one sample."""
    k, n = len(sizes), int(sizes.sum())
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    cluster_of = np.repeat(np.arange(k), sizes)
    units = k if by_cluster else n
    for lo in range(0, units, chunk):
        rows = np.arange(lo, min(units, lo + chunk))
        if by_cluster:
            counts = np.ones((len(rows), k))
            counts[np.arange(len(rows)), rows] = 0.0
            weights = counts[:, cluster_of]
        else:
            counts = np.ones((len(rows), k))
            weights = np.ones((len(rows), n))
            weights[np.arange(len(rows)), rows] = 0.0
        yield Resample(weights, counts, starts)


@dataclass(frozen=True)
class BootstrapResult:
    """Estimates and intervals of one or more statistics: arrays of shape ``[n_statistics]``; ``distribution`` is
    ``[n_boot, n_statistics]``."""

    names: tuple[str, ...]
    estimate: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    distribution: np.ndarray = field(repr=False)
    n_samples: int
    n_datasets: int
    n_boot: int
    method: str
    confidence: float

    def to_frame(self, **columns: object) -> pd.DataFrame:
        """Tidy table (:data:`RESULT_COLUMNS`), with constant ``columns`` (e.g. ``vector=...``) in front."""
        frame = pd.DataFrame({
            "statistic": list(self.names), "estimate": self.estimate, "ci_low": self.ci_low, "ci_high": self.ci_high,
            "n_samples": self.n_samples, "n_datasets": self.n_datasets, "n_boot": self.n_boot, "method": self.method,
            "confidence": self.confidence,
        })
        for i, (key, value) in enumerate(columns.items()):
            frame.insert(i, key, [value] * len(frame))
        return frame


def _check(n_boot: int, confidence: float, method: str) -> None:
    if int(n_boot) < 2:
        raise ConfigError(f"n_boot={n_boot}: use at least 2 resamples (2000 for a 95% interval)")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence={confidence}: use a level strictly between 0 and 1, e.g. 0.95")
    if method not in METHODS:
        raise ConfigError(f"method={method!r}: use one of {', '.join(METHODS)}")


def _as_2d(stat: np.ndarray, rows: int) -> np.ndarray:
    stat = np.asarray(stat, dtype=float)
    return stat.reshape(rows, -1)


def _interval(estimate: np.ndarray, boot: np.ndarray, jack: np.ndarray | None, confidence: float,
              method: str) -> tuple[np.ndarray, np.ndarray]:
    """Percentile or BCa interval per column of ``boot`` (NaN rows of a column are dropped)."""
    alpha = (1 - confidence) / 2
    low, high = np.full(len(estimate), np.nan), np.full(len(estimate), np.nan)
    if method == "percentile":  # all columns at once
        finite = np.isfinite(boot)
        usable = (finite.sum(axis=0) >= 2) & np.isfinite(estimate)
        if usable.any():
            sub = boot[:, usable]
            if finite[:, usable].all():
                q = np.percentile(sub, [100 * alpha, 100 * (1 - alpha)], axis=0)
            else:
                q = np.nanpercentile(sub, [100 * alpha, 100 * (1 - alpha)], axis=0)
            low[usable], high[usable] = q[0], q[1]
        return low, high
    for j in range(len(estimate)):
        column = boot[:, j][np.isfinite(boot[:, j])]
        if len(column) < 2 or not np.isfinite(estimate[j]):
            continue
        q_low, q_high = alpha, 1 - alpha
        if method == "bca":
            assert jack is not None
            jk = jack[:, j][np.isfinite(jack[:, j])]
            z0 = ndtri(np.mean(column < estimate[j]))
            dev = jk.mean() - jk
            denom = 6.0 * (dev @ dev) ** 1.5
            accel = (dev ** 3).sum() / denom if denom > 0 else 0.0
            z = ndtri(np.array([alpha, 1 - alpha]))
            q_low, q_high = ndtr(z0 + (z0 + z) / (1 - accel * (z0 + z)))
            if not (np.isfinite(q_low) and np.isfinite(q_high)):  # all resamples on one side of the estimate
                continue
        low[j], high[j] = np.percentile(column, [100 * q_low, 100 * q_high])
    return low, high


def bootstrap(
    data: Mapping[str, Values],
    statistic: Statistic,
    *,
    clusters: Labels | None = None,
    names: Sequence[str] | None = None,
    n_boot: int = 2000,
    confidence: float = 0.95,
    method: str = "percentile",
    seed: int = 0,
    resample_clusters: bool = True,
    resample_within: bool = True,
    chunk: int = 250,
) -> BootstrapResult:
    """Bootstrap ``statistic`` over samples (``clusters=None``) or over clusters and samples within them.

    ``data``: equal-length columns, one entry per sample (reordered by cluster before ``statistic`` sees them).
    ``statistic(resample, data)`` returns ``[n_resamples]`` or ``[n_resamples, n_statistics]`` (see
    :class:`Resample` for the weighted building blocks); ``names`` labels the statistics. Resamples are drawn in
    batches of ``chunk`` from ``numpy.random.default_rng(seed)``.
    """
    _check(n_boot, confidence, method)
    columns: dict[str, np.ndarray] = {key: np.asarray(value) for key, value in data.items()}
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise ConfigError(f"bootstrap: data columns have different lengths {sorted(lengths)}")
    (n,) = lengths
    if n < 2:
        raise ConfigError(f"bootstrap needs at least 2 samples, got {n}")
    if clusters is not None and len(clusters) != n:
        raise ConfigError(f"bootstrap: {len(clusters)} cluster labels for {n} samples")
    order, starts, labels = _cluster_layout(None if clusters is None else np.asarray(clusters, dtype=object), n)
    sizes = np.diff(np.concatenate([starts, [n]]))
    sorted_data = {key: value[order] for key, value in columns.items()}
    ones = Resample(np.ones((1, n)), np.ones((1, len(sizes))), starts)
    estimate = _as_2d(statistic(ones, sorted_data), 1)[0]
    rng = np.random.default_rng(seed)
    batches = []
    for lo in range(0, int(n_boot), chunk):
        resample = _draw(sizes, min(chunk, int(n_boot) - lo), rng, resample_clusters, resample_within)
        batches.append(_as_2d(statistic(resample, sorted_data), resample.n_resamples))
    boot = np.concatenate(batches)
    jack = None
    if method == "bca":
        by_cluster = resample_clusters and len(sizes) > 1
        jack = np.concatenate([_as_2d(statistic(r, sorted_data), r.n_resamples)
                               for r in _jackknife(sizes, by_cluster, chunk)])
    low, high = _interval(estimate, boot, jack, confidence, method)
    names = tuple(names) if names is not None else (("statistic",) if len(estimate) == 1 else
                                                    tuple(f"statistic_{i}" for i in range(len(estimate))))
    if len(names) != len(estimate):
        raise ConfigError(f"bootstrap: {len(names)} names for {len(estimate)} statistics")
    label = f"{'cluster' if clusters is not None else 'iid'}-{method}"
    return BootstrapResult(names, estimate, low, high, boot, n, len(sizes) if clusters is not None else 1,
                           int(n_boot), label, confidence)


_SIMPLE: dict[str, Callable[[Resample, np.ndarray], np.ndarray]] = {
    "mean": lambda r, x: r.pooled_mean(x),
    "median": lambda r, x: weighted_median(x, r.weights),
    "fraction_below_zero": lambda r, x: r.pooled_mean((x < 0).astype(float)),
}


def bootstrap_ci(values: Values, statistic: str | Callable[[np.ndarray, np.ndarray], np.ndarray] = "mean",
                 **options) -> BootstrapResult:
    """I.i.d. bootstrap of one statistic of ``values``: ``"mean"``, ``"median"``, ``"fraction_below_zero"`` or
    ``f(values, weights[b, n]) -> [b]``; options as :func:`bootstrap` (``n_boot``, ``confidence``, ``method``, ``seed``)."""
    x = np.asarray(values, dtype=float)
    if not np.isfinite(x).all():
        raise ConfigError(f"bootstrap_ci: {int((~np.isfinite(x)).sum())} non-finite value(s); drop them first")
    if isinstance(statistic, str):
        if statistic not in _SIMPLE:
            raise ConfigError(f"bootstrap_ci: statistic {statistic!r}; use one of {', '.join(_SIMPLE)} or a function")
        fn, name = _SIMPLE[statistic], statistic

        def stat(r: Resample, d: Mapping[str, np.ndarray]) -> np.ndarray:
            return fn(r, d["x"])
    else:
        name = getattr(statistic, "__name__", "statistic")

        def stat(r: Resample, d: Mapping[str, np.ndarray]) -> np.ndarray:
            return statistic(d["x"], r.weights)
    return bootstrap({"x": x}, stat, names=[name], **options)


# --------------------------------------------------------------------------------------------------------------
# ready-made statistics of the study
