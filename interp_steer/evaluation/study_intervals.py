"""Bootstrap intervals for the study's headline figures, built on the engine :mod:`interp_steer.stats.bootstrap`.

:func:`steerability_cis` (mean / median steerability, anti-steerable fraction), :func:`spurious_cis` (the
spurious-factor variance split) and :func:`correlation_ci` (correlations whose points are clustered by dataset),
per dataset and across datasets, as tidy tables with :data:`~interp_steer.stats.bootstrap.RESULT_COLUMNS`
(the methods are those of the table in :mod:`interp_steer.stats`).
"""

from __future__ import annotations

from typing import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from interp_steer.errors import ConfigError
from interp_steer.evaluation.tables import require_columns as _need
from interp_steer.stats.bootstrap import (
    RESULT_COLUMNS,
    BootstrapResult,
    Labels,
    Resample,
    Values,
    bootstrap,
)
from interp_steer.stats.intervals import anti_steerable_interval
from interp_steer.stats.weighted import weighted_correlation

STEERABILITY_STATISTICS = ("mean_slope", "median_slope", "anti_steerable_fraction")


def _groups(frame: pd.DataFrame, by: Sequence[str]) -> Iterator[tuple[dict, pd.DataFrame]]:
    if not by:
        yield {}, frame
        return
    for key, group in frame.groupby(list(by), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        yield dict(zip(by, key)), group



def _finite(frame: pd.DataFrame, column: str, what: str) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(values).all():
        raise ConfigError(f"{what}: {int((~np.isfinite(values)).sum())} non-finite value(s) in column {column!r}; "
                          "drop those samples or recompute them")
    return values


def steerability_cis(
    per_sample: pd.DataFrame,
    *,
    by: Sequence[str] = (),
    dataset: str = "dataset",
    slope: str = "slope",
    levels: Sequence[str] = ("dataset", "across_datasets"),
    n_boot: int = 2000,
    confidence: float = 0.95,
    method: str = "percentile",
    seed: int = 0,
    resample_within: bool = True,
) -> pd.DataFrame:
    """Intervals for mean / median steerability and the anti-steerable fraction (share of slopes < 0).

    ``level="dataset"`` rows: per dataset, the statistic over its samples, samples resampled within the dataset.
    ``level="across_datasets"`` rows: each dataset counted once: ``mean_slope`` = mean over datasets of the dataset
    mean slope, ``median_slope`` = median over datasets of the dataset median slope, ``anti_steerable_fraction`` = mean
    over datasets of the dataset fraction; datasets and samples within them resampled (two-level bootstrap).
    One table per group of ``by`` (e.g. ``("vector", "layer")``), tidy: ``[*by, level, dataset, *RESULT_COLUMNS]``.
    """
    _need(per_sample, list(by) + [dataset, slope], "steerability_cis")
    unknown = [lv for lv in levels if lv not in ("dataset", "across_datasets")]
    if unknown:
        raise ConfigError(f"steerability_cis: unknown level(s) {unknown}; use 'dataset' and/or 'across_datasets'")
    frames = []
    for keys, group in _groups(per_sample, by):
        y = _finite(group, slope, "steerability_cis")
        labels = group[dataset].to_numpy(dtype=object)
        names = sorted(pd.unique(labels))
        if "dataset" in levels:
            def per_dataset(r: Resample, d: Mapping[str, np.ndarray]) -> np.ndarray:
                return np.concatenate([r.cluster_mean(d["y"]), r.cluster_median(d["y"]),
                                       r.cluster_mean((d["y"] < 0).astype(float))], axis=1)

            result = bootstrap({"y": y}, per_dataset, clusters=labels, n_boot=n_boot, confidence=confidence,
                               method=method, seed=seed, resample_clusters=False, resample_within=True,
                               names=[f"{s}|{n}" for s in STEERABILITY_STATISTICS for n in names])
            table = result.to_frame(**keys, level="dataset")
            split = table["statistic"].str.split("|", n=1, expand=True)
            table["statistic"], table[dataset] = split[0], split[1]
            counts = pd.Series(labels).value_counts()
            table["n_samples"], table["n_datasets"] = table[dataset].map(counts).to_numpy(), 1
            table["method"] = f"iid-{method}"
            frames.append(_wilson_anti_rows(table, y, labels, dataset, confidence))
        if "across_datasets" in levels and len(names) > 1:
            def across(r: Resample, d: Mapping[str, np.ndarray]) -> np.ndarray:
                return np.column_stack([r.across_clusters(r.cluster_mean(d["y"])),
                                        r.across_clusters(r.cluster_median(d["y"]), "median"),
                                        r.across_clusters(r.cluster_mean((d["y"] < 0).astype(float)))])

            result = bootstrap({"y": y}, across, clusters=labels, n_boot=n_boot, confidence=confidence, method=method,
                               seed=seed, resample_within=resample_within, names=list(STEERABILITY_STATISTICS))
            frames.append(result.to_frame(**keys, level="across_datasets", **{dataset: None}))
    out = pd.concat(frames, ignore_index=True)
    front = list(by) + ["level", dataset]
    return out[front + RESULT_COLUMNS]


def _wilson_anti_rows(table: pd.DataFrame, y: np.ndarray, labels: np.ndarray, dataset: str,
                      confidence: float) -> pd.DataFrame:
    """Within one dataset the samples are independent: its anti-steerable fraction gets Wilson's interval (a
    percentile bootstrap gives 0 of n the empty interval [0, 0])."""
    rows = table["statistic"] == "anti_steerable_fraction"
    for i in table.index[rows]:
        _, low, high = anti_steerable_interval(y[labels == table.at[i, dataset]], confidence=confidence)
        table.loc[i, ["ci_low", "ci_high", "n_boot", "method"]] = [low, high, 0, "wilson"]
    return table


def correlation_ci(
    x: Values,
    y: Values,
    *,
    clusters: Labels | None = None,
    method: str = "pearson",
    of_cluster_means: bool = False,
    n_boot: int = 2000,
    confidence: float = 0.95,
    interval: str = "percentile",
    seed: int = 0,
) -> BootstrapResult:
    """Pearson / Spearman correlation of paired points with a bootstrap interval that respects clusters.

    ``clusters=None``: points are independent (i.i.d. bootstrap). With ``clusters`` (e.g. the dataset of each
    (dataset, variant) point) whole clusters are resampled with all their points, so repeated points of one
    dataset do not count as independent evidence; ``of_cluster_means=True`` instead correlates the cluster means
    of ``x`` and ``y`` (one point per cluster). Points with a NaN coordinate are dropped.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) != len(y):
        raise ConfigError(f"correlation_ci: x has {len(x)} points, y has {len(y)}")
    keep = np.isfinite(x) & np.isfinite(y)
    labels = None if clusters is None else np.asarray(clusters, dtype=object)[keep]
    x, y = x[keep], y[keep]
    if of_cluster_means and labels is None:
        raise ConfigError("correlation_ci: of_cluster_means=True needs clusters")

    def stat(r: Resample, d: Mapping[str, np.ndarray]) -> np.ndarray:
        if of_cluster_means:
            return weighted_correlation(r.cluster_mean(d["x"]), r.cluster_mean(d["y"]),
                                        np.where(r.cluster_counts > 0, r.cluster_counts, 0.0), method)
        return weighted_correlation(d["x"], d["y"], r.weights, method)

    name = f"{method}_r" + ("_of_dataset_means" if of_cluster_means else "")
    return bootstrap({"x": x, "y": y}, stat, clusters=labels, names=[name], n_boot=n_boot, confidence=confidence,
                     method=interval, seed=seed, resample_within=labels is None)


SPURIOUS_STATISTICS = ("var_total", "var_is_A", "var_is_Yes", "var_unexplained", "r2_is_A", "r2_is_A_is_Yes")


def _spurious_per_cluster(r: Resample, d: Mapping[str, np.ndarray], known_yes: np.ndarray) -> list[np.ndarray]:
    """The :data:`SPURIOUS_STATISTICS` per cluster ``[b, K]`` of one batch of resamples."""
    from interp_steer.evaluation.spurious import MOMENTS, sequential_sums_of_squares

    split = sequential_sums_of_squares({m: r.cluster_sum(d[m]) for m in MOMENTS})
    with np.errstate(invalid="ignore", divide="ignore"):
        dof = r.cluster_sum(d["1"]) - 1
        dof = np.where(dof > 0, dof, np.nan)
        total = np.where(split["total"] > 0, split["total"], np.nan)
        yes = np.where(known_yes[None, :], 1.0, np.nan)
        return [split["total"] / dof, split["a"] / dof, yes * split["e"] / dof, split["residual"] / dof,
                split["a"] / total, yes * (split["a"] + split["e"]) / total]


def spurious_cis(
    per_sample: pd.DataFrame,
    *,
    by: Sequence[str] = (),
    dataset: str = "dataset",
    slope: str = "slope",
    levels: Sequence[str] = ("dataset", "across_datasets"),
    n_boot: int = 2000,
    confidence: float = 0.95,
    method: str = "percentile",
    seed: int = 0,
    resample_within: bool = True,
) -> pd.DataFrame:
    """Intervals for the spurious-factor split of per-sample steerability (:mod:`~interp_steer.evaluation.spurious`):
    ``var_total`` / ``var_is_A`` / ``var_is_Yes`` / ``var_unexplained`` (sample variance parts, slope units²) and
    ``r2_is_A`` / ``r2_is_A_is_Yes`` (variance explained). ``level="dataset"``: per dataset, samples resampled;
    ``level="across_datasets"``: the mean over datasets (datasets without ``is_Yes`` skipped for its statistics),
    two-level bootstrap. Tidy: ``[*by, level, dataset, *RESULT_COLUMNS]``."""
    from interp_steer.evaluation.spurious import moment_terms

    _need(per_sample, list(by) + [dataset, slope, "is_A", "is_Yes"], "spurious_cis")
    frames = []
    for keys, group in _groups(per_sample, by):
        group = group.dropna(subset=[slope, "is_A"])
        labels = group[dataset].to_numpy(dtype=object)
        names = sorted(pd.unique(labels))
        yes_known = group["is_Yes"].notna().groupby(group[dataset]).all().reindex(names).to_numpy(dtype=bool)
        # as float first: a nullable-boolean column (tables read back with missing is_Yes) cannot hold 0.0
        e = pd.to_numeric(group["is_Yes"].astype("Float64"), errors="coerce").fillna(0.0).to_numpy(dtype=float, copy=True)
        e[~group[dataset].map(dict(zip(names, yes_known))).to_numpy(dtype=bool)] = 0.0  # is_Yes not (fully) known
        terms = moment_terms(_finite(group, slope, "spurious_cis"), group["is_A"].astype(float).to_numpy(), e)
        if "dataset" in levels:
            def per_dataset(r: Resample, d: Mapping[str, np.ndarray], yes_known: np.ndarray = yes_known) -> np.ndarray:
                return np.concatenate(_spurious_per_cluster(r, d, yes_known), axis=1)

            result = bootstrap(terms, per_dataset, clusters=labels, n_boot=n_boot, confidence=confidence, method=method,
                               seed=seed, resample_clusters=False, names=[f"{s}|{n}" for s in SPURIOUS_STATISTICS for n in names])
            table = result.to_frame(**keys, level="dataset")
            split = table["statistic"].str.split("|", n=1, expand=True)
            table["statistic"], table[dataset] = split[0], split[1]
            table["n_samples"], table["n_datasets"] = table[dataset].map(pd.Series(labels).value_counts()).to_numpy(), 1
            table["method"] = f"iid-{method}"
            frames.append(table)
        if "across_datasets" in levels and len(names) > 1:
            def across(r: Resample, d: Mapping[str, np.ndarray], yes_known: np.ndarray = yes_known) -> np.ndarray:
                return np.column_stack([r.across_clusters(s) for s in _spurious_per_cluster(r, d, yes_known)])

            result = bootstrap(terms, across, clusters=labels, n_boot=n_boot, confidence=confidence, method=method,
                               seed=seed, resample_within=resample_within, names=list(SPURIOUS_STATISTICS))
            frames.append(result.to_frame(**keys, level="across_datasets", **{dataset: None}))
    if not frames:
        raise ConfigError("spurious_cis: nothing to compute (one dataset and levels=('across_datasets',))")
    return pd.concat(frames, ignore_index=True)[list(by) + ["level", dataset] + RESULT_COLUMNS]
