"""Comparing extraction methods per sample (issue 28): pure functions from tidy tables to tidy tables with intervals.

Inputs are the method study's tables (:mod:`interp_steer.runs.method_study`), but nothing here knows the job:

* ``per_sample``: one row per (``spec``, ``method``, ``sample_id``) with the steerability ``slope`` (least-squares
  slope of propensity on multiplier, :func:`~interp_steer.evaluation.metrics.steerability`);
* ``kl``: neutral-corpus KL per (``spec``, ``method``, ``passage_id``, ``multiplier``)
  (:func:`~interp_steer.evaluation.side_effects.neutral_side_effects`);
* ``propensities``: propensity per (``spec``, ``method``, ``sample_id``, ``multiplier``).

**Matched shift** (:func:`matched_shift_kl`). For each dataset the *matched multiplier* of a method is the
multiplier at which its mean fitted propensity shift equals CAA's at the reference multiplier ``m_ref``:
``m* = m_ref · s̄_CAA / s̄_method`` (``s̄``: the mean per-sample slope on the same held-out samples, so the shift
``s̄·m`` is the linear fit's). Its interval is a paired bootstrap of the held-out samples. The neutral-corpus KL
of each passage is interpolated linearly in the multiplier between the measured ones (KL is 0 at 0) and averaged
over passages; its interval resamples passages at the point estimate ``m*`` (it does not carry ``m*``'s own
uncertainty, which is reported beside it). A method with ``s̄ ≤ 0`` has no matched shift; one whose ``m*``
exceeds the largest measured multiplier is not extrapolated (both are NaN with the reason in ``status``).

**Dataset or method?** (:func:`dataset_or_method`): per method, the Spearman rank correlation across datasets
of its anti-steerable fraction with CAA's (bootstrap over datasets), and a two-way decomposition (method ×
dataset, one value per cell) of the anti-steerable fraction's variance into dataset, method and residual shares
(bootstrap over datasets). A high correlation and a large dataset share say unreliability is a property of the
dataset; a large method share says the method matters.

**Ranking** (:func:`method_ranking`): per purpose, each method's mean over datasets of a per-dataset comparison
with CAA (a difference or a ratio), with a bootstrap interval over datasets; the verdict says *better* / *worse
than CAA* only where the interval excludes no difference, otherwise *not distinguishable from CAA*.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from interp_steer.errors import ConfigError
from interp_steer.stats.bootstrap import bootstrap
from interp_steer.stats.intervals import anti_steerable_interval, mean_interval

REFERENCE = "caa"


def mean_ci(values: Sequence[float] | np.ndarray | pd.Series, n_boot: int, seed: int) -> tuple[float, float, float]:
    """Mean of the finite ``values`` and its percentile-bootstrap 95% interval over rows
    (:func:`interp_steer.stats.intervals.mean_interval`; NaN interval below 2 values)."""
    return mean_interval(values, n_boot=n_boot, seed=seed)


def _order(frame: pd.DataFrame, methods: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(frame["method"]))
    return [m for m in methods if m in present] if methods else present


# ------------------------------------------------------------------------------------------ per dataset
def method_summary(per_sample: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per (spec, method): ``mean_slope`` and ``anti_steerable_fraction`` (share of slopes < 0), each with its
    percentile-bootstrap CI over samples (the one interval per statistic of :mod:`interp_steer.stats`)."""
    rows = []
    for (spec, method), group in per_sample.groupby(["spec", "method"], sort=False):
        slopes = group["slope"].to_numpy(float)
        n_anti = int((slopes < 0).sum())
        mean, low, high = mean_ci(slopes, n_boot, seed)
        a_low, a_high = anti_steerable_interval(slopes, n_boot=n_boot, seed=seed)[1:]
        rows.append({"spec": spec, "method": method, "n_samples": len(slopes), "mean_slope": mean,
                     "mean_slope_ci_low": low, "mean_slope_ci_high": high,
                     "anti_steerable_fraction": n_anti / len(slopes), "anti_ci_low": a_low, "anti_ci_high": a_high})
    return pd.DataFrame(rows)


def paired_against_reference(per_sample: pd.DataFrame, *, reference: str = REFERENCE, n_boot: int = 2000,
                             seed: int = 0) -> pd.DataFrame:
    """Per (spec, method ≠ reference): mean over the shared held-out samples of ``slope_method − slope_reference``
    (bootstrap CI)."""
    wide = per_sample.pivot_table(index=["spec", "sample_id"], columns="method", values="slope")
    rows: list[dict] = []
    if reference not in wide.columns:
        return pd.DataFrame(rows)
    for method in [m for m in _order(per_sample, None) if m != reference]:
        for spec, block in wide.groupby(level="spec", sort=False):
            diff = (block[method] - block[reference]).dropna().to_numpy(float)
            if len(diff):
                mean, low, high = mean_ci(diff, n_boot, seed)
                rows.append({"spec": spec, "method": method, "n_samples": len(diff), "mean_slope_difference": mean,
                             "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def _matched_multiplier(caa: np.ndarray, own: np.ndarray, m_ref: float, n_boot: int, seed: int) -> tuple:
    """``m_ref · mean(caa) / mean(own)`` and its paired-bootstrap interval over samples."""
    estimate = m_ref * caa.mean() / own.mean() if own.mean() > 0 else float("nan")
    if not np.isfinite(estimate) or len(own) < 2:
        return estimate, float("nan"), float("nan")

    def ratio(r, d):
        with np.errstate(invalid="ignore", divide="ignore"):
            own_mean = r.pooled_mean(d["own"])
            return np.where(own_mean > 0, m_ref * r.pooled_mean(d["caa"]) / own_mean, np.inf)

    with np.errstate(invalid="ignore"):  # resamples whose mean slope is ≤ 0 give an unbounded (inf) upper limit
        result = bootstrap({"caa": caa, "own": own}, ratio, n_boot=n_boot, seed=seed)
    return float(estimate), float(result.ci_low[0]), float(result.ci_high[0])


def _kl_at(kl: pd.DataFrame, multiplier: float) -> np.ndarray:
    """Per passage, KL interpolated linearly in the multiplier (KL 0 at 0) at ``multiplier`` (≥ 0, ≤ the largest)."""
    grid = kl.pivot_table(index="passage_id", columns="multiplier", values="kl").sort_index(axis=1)
    grid = grid.loc[:, grid.columns > 0]
    xs = np.r_[0.0, grid.columns.to_numpy(float)]
    return np.array([np.interp(multiplier, xs, np.r_[0.0, row]) for row in grid.to_numpy(float)])


def matched_shift_kl(per_sample: pd.DataFrame, kl: pd.DataFrame, reference_multiplier: float, *,
                     reference: str = REFERENCE, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per (spec, method): the matched multiplier ``m*`` (module docstring) with its interval, the mean neutral KL at
    ``m*`` (``kl_matched_shift``) and at the reference multiplier (``kl_matched_norm``: every vector has CAA's norm),
    each with a passage-bootstrap interval, and ``kl_ratio_to_reference`` (KL at ``m*`` over CAA's at ``m_ref``)."""
    if reference_multiplier <= 0:
        raise ConfigError(f"matched_shift_kl: reference_multiplier must be > 0, got {reference_multiplier}")
    wide = per_sample.pivot_table(index=["spec", "sample_id"], columns="method", values="slope")
    rows = []
    for (spec, method), block in kl.groupby(["spec", "method"], sort=False):
        top = float(block.loc[block["multiplier"] > 0, "multiplier"].max())
        row: dict = {"spec": spec, "method": method, "reference_multiplier": reference_multiplier,
                     "n_passages": int(block["passage_id"].nunique()), "status": "ok"}
        norm_values = _kl_at(block, reference_multiplier) if reference_multiplier <= top else np.array([np.nan])
        row["kl_matched_norm"], row["kl_matched_norm_ci_low"], row["kl_matched_norm_ci_high"] = mean_ci(
            norm_values, n_boot, seed)
        if spec not in wide.index.get_level_values(0) or method not in wide.columns or reference not in wide.columns:
            row.update(status="no propensities", matched_multiplier=np.nan)
            rows.append(row)
            continue
        if method == reference:
            m_star = low = high = reference_multiplier
        else:
            pair = wide.loc[spec, [reference, method]].dropna()
            m_star, low, high = _matched_multiplier(pair[reference].to_numpy(float), pair[method].to_numpy(float),
                                                    reference_multiplier, n_boot, seed)
        row.update(matched_multiplier=m_star, matched_multiplier_ci_low=low, matched_multiplier_ci_high=high)
        if not np.isfinite(m_star) or m_star <= 0:
            row["status"] = "no matched shift (mean slope ≤ 0)"
        elif m_star > top:
            row["status"] = f"matched multiplier beyond the largest measured ({top:g})"
        else:
            values = _kl_at(block, m_star)
            row["kl_matched_shift"], row["kl_matched_shift_ci_low"], row["kl_matched_shift_ci_high"] = mean_ci(
                values, n_boot, seed)
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    ref = out[out["method"] == reference].set_index("spec")["kl_matched_norm"]
    out["kl_ratio_to_reference"] = out.get("kl_matched_shift", np.nan) / out["spec"].map(ref)
    return out


def contrast_table(propensities: pd.DataFrame, baseline: pd.DataFrame | None, kl: pd.DataFrame | None,
                   reference_multiplier: float, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per (spec, arm): each method's contrast ``propensity(+m_ref) − propensity(−m_ref)`` per sample (mean and
    bootstrap CI) and its neutral KL at ``+m_ref``, beside the prompting baseline's ``SYS_POS − SYS_NEG`` contrast
    and the KL of its positive persona prompt (from :func:`~interp_steer.evaluation.baseline.prompting_baseline`'s
    table, columns ``dataset, method, arm, shift, shift_lo, shift_hi, kl, kl_lo, kl_hi``; ``spec`` added)."""
    m = float(reference_multiplier)
    rows = []
    for (spec, method), block in propensities.groupby(["spec", "method"], sort=False):
        by_m = block.pivot_table(index="sample_id", columns="multiplier", values="propensity")
        if m not in by_m.columns or -m not in by_m.columns:
            raise ConfigError(f"contrast_table: propensities of {method} on {spec} lack multiplier ±{m:g}")
        contrast, low, high = mean_ci((by_m[m] - by_m[-m]).to_numpy(float), n_boot, seed)
        row = {"spec": spec, "arm": method, "setting": f"steering ±{m:g} (matched norm)", "n_samples": len(by_m),
               "contrast": contrast, "contrast_ci_low": low, "contrast_ci_high": high}
        if kl is not None and not kl.empty:
            at = kl[(kl["spec"] == spec) & (kl["method"] == method) & np.isclose(kl["multiplier"], m)]
            row["kl"], row["kl_ci_low"], row["kl_ci_high"] = mean_ci(at["kl"], n_boot, seed)
        rows.append(row)
    if baseline is not None and not baseline.empty:
        for spec, block in baseline[baseline["method"] == "prompting"].groupby("spec", sort=False):
            contrast = block[block["arm"] == "contrast"].iloc[0]
            pos = block[block["arm"] == "pos"].iloc[0]
            rows.append({"spec": spec, "arm": "prompting", "setting": "SYS_POS − SYS_NEG persona prompts",
                         "n_samples": int(contrast["n_samples"]), "contrast": contrast["shift"],
                         "contrast_ci_low": contrast["shift_lo"], "contrast_ci_high": contrast["shift_hi"],
                         "kl": pos["kl"], "kl_ci_low": pos["kl_lo"], "kl_ci_high": pos["kl_hi"]})
    return pd.DataFrame(rows)
