"""Across datasets: ID→OOD transfer per method, "dataset or method?", and the "which method for which purpose"
ranking (issue 28). The definitions are in :mod:`interp_steer.analysis.method_comparison`'s docstring."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from interp_steer.analysis.method_comparison import REFERENCE, mean_ci
from interp_steer.stats.bootstrap import bootstrap
from interp_steer.stats.weighted import weighted_correlation

OOD_KEYS = ["dataset", "method", "train_variant", "variant", "layer", "hook_name", "vector", "sample_id"]


# ------------------------------------------------------------------------------------------ ID → OOD
def ood_relative(variant_propensities: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per (method, dataset, eval variant): the relative steerability of the method's BASE vector on that variant,
    ``slope(BASE→Y) / |slope(Y→Y)|`` with a paired bootstrap interval over test samples
    (:func:`~interp_steer.evaluation.variants.relative_steerability_table`, its own-slope cutoff included).

    ``variant_propensities``: propensities with ``method``, ``train_variant`` (the vector's variant) and ``variant``
    (the prompts'), multiplier 0 included."""
    from interp_steer.evaluation.metrics import steerability
    from interp_steer.evaluation.variants import relative_steerability_table

    if variant_propensities.empty:
        return pd.DataFrame()
    frames = []
    for method, props in variant_propensities.groupby("method", sort=False):
        keys = [k for k in OOD_KEYS if k in props.columns]
        per_sample = steerability(props, keys=keys)
        table = relative_steerability_table(per_sample, props, n_boot=n_boot, seed=seed)["per_dataset"]
        frames.append(table[table["train_variant"] == "BASE"].assign(method=method))
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------------------------------ dataset or method?
def _matrix(summary: pd.DataFrame, column: str, methods: Sequence[str] | None) -> pd.DataFrame:
    """``[spec × method]`` of ``column`` (methods in ``methods`` order; missing cells NaN)."""
    grid = summary.pivot(index="spec", columns="method", values=column)
    return grid[[m for m in methods if m in grid.columns]] if methods else grid


def variance_shares(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Two-way (dataset × method, one value per cell) decomposition of ``values`` ``[n_datasets, n_methods]`` with
    dataset weights ``weights`` ``[b, n_datasets]``: ``[b, 3]`` shares of the total sum of squares due to the
    dataset means, the method means and the residual (interaction)."""
    w = weights / weights.sum(1, keepdims=True)  # [b, D]
    grand = w @ values.mean(1)  # [b]
    dataset_means = values.mean(1)  # [D]
    method_means = w @ values  # [b, M]
    n_methods = values.shape[1]
    ss_dataset = n_methods * (w * (dataset_means[None, :] - grand[:, None]) ** 2).sum(1)
    ss_method = ((method_means - grand[:, None]) ** 2).sum(1)
    ss_total = np.einsum("bd,bdm->b", w, (values[None, :, :] - grand[:, None, None]) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.stack([ss_dataset, ss_method, ss_total - ss_dataset - ss_method], axis=1) / ss_total[:, None]
    return shares


def dataset_or_method(summary: pd.DataFrame, methods: Sequence[str] | None = None, *,
                      column: str = "anti_steerable_fraction", reference: str = REFERENCE, n_boot: int = 2000,
                      seed: int = 0) -> dict[str, pd.DataFrame]:
    """``correlation``: per method ≠ reference, the Spearman correlation across the datasets both have (≥ 3) of
    ``column`` with the reference's (bootstrap over datasets); ``variance``: the dataset / method / residual shares
    of ``column``'s variance (:func:`variance_shares`, bootstrap over datasets) over the methods run on every
    dataset the reference was (methods run on fewer, e.g. trained ones on a subset, are left out of it)."""
    grid = _matrix(summary, column, methods)
    empty = {"correlation": pd.DataFrame(), "variance": pd.DataFrame()}
    if reference not in grid.columns:
        return empty
    grid = grid[grid[reference].notna()]
    rows = []
    for method in [m for m in grid.columns if m != reference]:
        both = grid[[method, reference]].dropna()
        if len(both) < 3:
            continue
        x, y = both[method].to_numpy(float), both[reference].to_numpy(float)
        res = bootstrap({"x": x, "y": y}, lambda r, d: weighted_correlation(d["x"], d["y"], r.weights, "spearman"),
                        n_boot=n_boot, seed=seed)
        rows.append({"method": method, "reference": reference, "measure": column, "n_datasets": len(both),
                     "spearman": float(res.estimate[0]), "ci_low": float(res.ci_low[0]),
                     "ci_high": float(res.ci_high[0])})
    grid = grid.loc[:, grid.notna().all()]
    if len(grid) < 3 or grid.shape[1] < 2:
        return {"correlation": pd.DataFrame(rows), "variance": pd.DataFrame()}
    values = grid.to_numpy(float)
    res = bootstrap({"row": np.arange(len(grid), dtype=float)},
                    lambda r, d: variance_shares(values[d["row"].astype(int)], r.weights),
                    names=["dataset", "method", "residual"], n_boot=n_boot, seed=seed)
    variance = pd.DataFrame({"source": list(res.names), "share": res.estimate, "ci_low": res.ci_low,
                             "ci_high": res.ci_high, "measure": column, "n_datasets": len(grid),
                             "n_methods": grid.shape[1], "methods": ",".join(grid.columns)})
    return {"correlation": pd.DataFrame(rows), "variance": variance}


# ------------------------------------------------------------------------------------------ ranking
PURPOSES = {
    "reliability": ("fewest anti-steerable samples", "anti-steerable fraction − CAA's", "difference", "lower"),
    "strength": ("largest mean slope at matched norm", "mean slope / CAA's", "ratio", "higher"),
    "side_effects": ("least neutral-corpus KL at matched shift", "KL at matched shift / CAA's KL", "ratio", "lower"),
    "transfer": ("best ID→OOD transfer", "mean OOD relative steerability − CAA's", "difference", "higher"),
}


def _per_dataset(summary, matched, ood, reference) -> dict[str, pd.DataFrame]:
    """Per purpose a ``[spec × method]`` table of the per-dataset comparison with the reference."""
    out = {}
    anti = summary.pivot(index="spec", columns="method", values="anti_steerable_fraction")
    out["reliability"] = anti.sub(anti[reference], axis=0)
    slope = summary.pivot(index="spec", columns="method", values="mean_slope")
    out["strength"] = slope.div(slope[reference], axis=0).where(slope[reference] > 0)
    if matched is not None and not matched.empty and "kl_matched_shift" in matched.columns:
        out["side_effects"] = matched.pivot(index="spec", columns="method", values="kl_ratio_to_reference")
    if ood is not None and not ood.empty:
        cells = ood[ood["variant"] != "BASE"].groupby(["dataset", "method"])["relative"].mean().unstack("method")
        if reference in cells.columns:
            out["transfer"] = cells.sub(cells[reference], axis=0)
    return out


def method_ranking(summary: pd.DataFrame, matched: pd.DataFrame | None = None, ood: pd.DataFrame | None = None, *,
                   reference: str = REFERENCE, n_boot: int = 2000, seed: int = 0, min_datasets: int = 3) -> pd.DataFrame:
    """Per purpose (:data:`PURPOSES`) and method ≠ reference: the mean over datasets of the per-dataset comparison
    with the reference (bootstrap CI over datasets, none below ``min_datasets``) and a verdict no stronger than that
    interval; ``rank`` orders
    the methods of a purpose by the estimate (1 = best), ``tier`` groups them by verdict."""
    tables = _per_dataset(summary, matched, ood, reference)
    rows = []
    for purpose, table in tables.items():
        label, comparison, kind, better = PURPOSES[purpose]
        null = 0.0 if kind == "difference" else 1.0
        for method in [m for m in table.columns if m != reference]:
            n = int(np.isfinite(table[method].to_numpy(float)).sum())
            mean, low, high = mean_ci(table[method], n_boot, seed)
            if n < min_datasets:  # a bootstrap over one or two datasets is no interval
                low = high = float("nan")
            if not (np.isfinite(low) and np.isfinite(high)):
                verdict = "too few datasets for an interval"
            elif (low > null and better == "higher") or (high < null and better == "lower"):
                verdict = "better than CAA"
            elif (low > null and better == "lower") or (high < null and better == "higher"):
                verdict = "worse than CAA"
            else:
                verdict = "not distinguishable from CAA"
            rows.append({"purpose": purpose, "goal": label, "comparison": comparison, "method": method,
                         "n_datasets": n, "estimate": mean, "ci_low": low, "ci_high": high, "no_difference": null,
                         "verdict": verdict})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    sign = out["purpose"].map(lambda p: -1.0 if PURPOSES[p][3] == "higher" else 1.0)
    out["rank"] = (out.assign(key=sign * out["estimate"]).groupby("purpose")["key"]
                   .rank(method="min", na_option="bottom").astype(int))
    tiers = {"better than CAA": 0, "not distinguishable from CAA": 1, "too few datasets for an interval": 1,
             "worse than CAA": 2}
    out["tier"] = out["verdict"].map(tiers)
    return out.sort_values(["purpose", "tier", "rank"], kind="stable").reset_index(drop=True)
