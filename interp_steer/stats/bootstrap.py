"""The project's one bootstrap engine: seeded, vectorised with numpy, over rows or over clusters of rows.

**Resamples as multiplicities.** A bootstrap resample is represented by how often each original row occurs in it:
a weight matrix ``[n_boot, n_rows]`` of integer counts (a :class:`Resample`), so every statistic is a weighted
statistic evaluated for all resamples at once (weighted means, medians, least squares, correlations; see
:mod:`interp_steer.stats.weighted`). The point estimate is the same code on the all-ones resample. Statistics that
need the rows themselves (an AUC of out-of-fold predictions) get index arrays (:func:`bootstrap_metric`).

**Resampling unit.** ``clusters=None``: rows, i.i.d. With ``clusters`` (e.g. the dataset of each sample) a
two-level (hierarchical) bootstrap: one resample draws ``K`` clusters with replacement (counts ``c_k`` ~
Multinomial(K, 1/K)) and then, within each drawn cluster, ``c_k · n_k`` rows with replacement from its ``n_k`` rows.
``resample_within=False`` keeps each drawn cluster whole (the textbook cluster bootstrap);
``resample_clusters=False`` keeps every cluster once and resamples rows within each (stratified bootstrap, e.g.
per-dataset intervals computed in one call). Resampling both levels counts the within-cluster variance slightly
more than once, so its intervals err on the wide side when clusters differ little.

**Interval.** ``method="percentile"`` (the project's method): the ``α/2`` and ``1 − α/2`` quantiles of the
bootstrap distribution (linear interpolation, as ``numpy.percentile``). ``method="bca"`` (on request only):
bias-corrected and accelerated (Efron 1987), acceleration from a jackknife over the resampling units, the formulas
of ``scipy.stats.bootstrap``.

**NaN policy.** The engine passes the data to the statistic unchanged (the :class:`Resample` helpers skip NaN
values, the simple interval functions of :mod:`interp_steer.stats.intervals` drop non-finite values before
resampling and count only the rows kept). A resample whose statistic is undefined (NaN: a correlation of a
constant, an AUC with one class) is left out of the quantiles; when fewer than half of the resamples give a finite
value the interval is NaN (the remaining resamples would be a biased selection).

**Small n.** No rows: :class:`~interp_steer.errors.ConfigError` from :func:`bootstrap` (the interval functions
return NaN estimate and interval instead). One row: the estimate, a NaN interval and ``n_boot`` 0 (no spread can
be estimated from one row).

Seeds are explicit (``seed``, a ``numpy.random.Generator`` seed): the same call gives the same interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Sequence, TypeAlias

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from interp_steer.errors import ConfigError
from interp_steer.stats.weighted import weighted_mean, weighted_median

Values: TypeAlias = Sequence[float] | np.ndarray | pd.Series
"""A 1-d run of numbers as the public functions take it: a list, an array or a DataFrame column."""
Labels: TypeAlias = Sequence | np.ndarray | pd.Series
"""One label per value (e.g. the dataset of each sample), as a list, an array or a DataFrame column."""

METHODS = ("percentile", "bca")
RESULT_COLUMNS = ["statistic", "estimate", "ci_low", "ci_high", "n_samples", "n_datasets", "n_boot", "method", "confidence"]
"""Columns of every tidy interval table (grouping columns come first)."""
MIN_FINITE_SHARE = 0.5
"""Share of resamples that must give a finite statistic for an interval (else NaN); see the NaN policy."""


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



def _enough(column: np.ndarray) -> bool:
    """At least two finite values and at least :data:`MIN_FINITE_SHARE` of the resamples finite."""
    k = int(np.isfinite(column).sum())
    return k >= 2 and k >= MIN_FINITE_SHARE * len(column)


def _interval(estimate: np.ndarray, boot: np.ndarray, jack: np.ndarray | None, confidence: float,
              method: str) -> tuple[np.ndarray, np.ndarray]:
    """Percentile or BCa interval per column of ``boot`` (NaN rows of a column are dropped; see the NaN policy)."""
    alpha = (1 - confidence) / 2
    low, high = np.full(len(estimate), np.nan), np.full(len(estimate), np.nan)
    usable = np.array([_enough(boot[:, j]) for j in range(boot.shape[1])], dtype=bool) & np.isfinite(estimate)
    if method == "percentile":  # all columns at once
        if usable.any():
            sub = boot[:, usable]
            if np.isfinite(sub).all():
                q = np.percentile(sub, [100 * alpha, 100 * (1 - alpha)], axis=0)
            else:
                q = np.nanpercentile(sub, [100 * alpha, 100 * (1 - alpha)], axis=0)
            low[usable], high[usable] = q[0], q[1]
        return low, high
    assert jack is not None
    for j in np.flatnonzero(usable):
        column = boot[:, j][np.isfinite(boot[:, j])]
        jk = jack[:, j][np.isfinite(jack[:, j])]
        z0 = ndtri(np.mean(column < estimate[j]))
        dev = jk.mean() - jk
        denom = 6.0 * (dev @ dev) ** 1.5
        accel = (dev ** 3).sum() / denom if denom > 0 else 0.0
        z = ndtri(np.array([alpha, 1 - alpha]))
        q_low, q_high = ndtr(z0 + (z0 + z) / (1 - accel * (z0 + z)))
        if np.isfinite(q_low) and np.isfinite(q_high):  # else all resamples on one side of the estimate
            low[j], high[j] = np.percentile(column, [100 * q_low, 100 * q_high])
    return low, high


def _names(names: Sequence[str] | None, k: int) -> tuple[str, ...]:
    out = tuple(names) if names is not None else (("statistic",) if k == 1 else tuple(f"statistic_{i}" for i in range(k)))
    if len(out) != k:
        raise ConfigError(f"bootstrap: {len(out)} names for {k} statistics")
    return out


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
    """Bootstrap ``statistic`` over rows (``clusters=None``) or over clusters and rows within them.

    ``data``: equal-length columns, one entry per row (reordered by cluster before ``statistic`` sees them).
    ``statistic(resample, data)`` returns ``[n_resamples]`` or ``[n_resamples, n_statistics]`` (see
    :class:`Resample` for the weighted building blocks); ``names`` labels the statistics. Resamples are drawn in
    batches of ``chunk`` from ``numpy.random.default_rng(seed)``. One row: estimate only (NaN interval).
    """
    _check(n_boot, confidence, method)
    columns: dict[str, np.ndarray] = {key: np.asarray(value) for key, value in data.items()}
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise ConfigError(f"bootstrap: data columns have different lengths {sorted(lengths)}")
    (n,) = lengths
    if n < 1:
        raise ConfigError("bootstrap: no rows to resample")
    if clusters is not None and len(clusters) != n:
        raise ConfigError(f"bootstrap: {len(clusters)} cluster labels for {n} samples")
    order, starts, _ = _cluster_layout(None if clusters is None else np.asarray(clusters, dtype=object), n)
    sizes = np.diff(np.concatenate([starts, [n]]))
    sorted_data = {key: value[order] for key, value in columns.items()}
    ones = Resample(np.ones((1, n)), np.ones((1, len(sizes))), starts)
    estimate = _as_2d(statistic(ones, sorted_data), 1)[0]
    label = f"{'cluster' if clusters is not None else 'iid'}-{method}"
    n_clusters = len(sizes) if clusters is not None else 1
    if n < 2:
        nan = np.full(len(estimate), np.nan)
        return BootstrapResult(_names(names, len(estimate)), estimate, nan, nan.copy(),
                               np.empty((0, len(estimate))), n, n_clusters, 0, label, confidence)
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
    return BootstrapResult(_names(names, len(estimate)), estimate, low, high, boot, n, n_clusters, int(n_boot), label,
                           confidence)


def bootstrap_metric(
    metric: Callable[[np.ndarray], float],
    n: int,
    *,
    clusters: Labels | None = None,
    resample_clusters: bool = True,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    name: str = "metric",
) -> BootstrapResult:
    """:func:`bootstrap` of a statistic that needs the rows themselves: ``metric(index)`` gets the row indices of one
    resample (original positions, a row repeated as often as it was drawn; order not meaningful) and returns a
    number. ``clusters`` + ``resample_clusters=False``: rows resampled within each stratum (every stratum kept)."""
    _check(n_boot, confidence, "percentile")
    labels = None if clusters is None else np.asarray(clusters, dtype=object)
    if labels is not None and len(labels) != n:
        raise ConfigError(f"bootstrap_metric: {len(labels)} cluster labels for {n} rows")
    if n < 1:
        raise ConfigError("bootstrap_metric: no rows to resample")
    order = _cluster_layout(labels, n)[0]

    def statistic(r: Resample, d: Mapping[str, np.ndarray]) -> np.ndarray:
        if r.n_resamples == 1 and np.all(r.weights == 1):
            return np.array([metric(np.arange(n))])
        counts = r.weights.astype(np.int64)
        return np.array([metric(order[np.repeat(np.arange(n), row)]) for row in counts])

    return bootstrap({"i": np.arange(n)}, statistic, clusters=labels, names=[name], n_boot=n_boot,
                     confidence=confidence, seed=seed, resample_clusters=resample_clusters)
