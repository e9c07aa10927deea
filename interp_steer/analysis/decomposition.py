"""Statement-level decomposition of per-sample steerability (issue 26, item 1).

A free-text sample's propensity is ``pos_logprob − neg_logprob`` (summed log-probs of the matching and the
non-matching completion), so its least-squares slope on the multiplier splits exactly into
``slope = s_pos − s_neg`` with ``s_pos`` / ``s_neg`` the slopes of the two log-probs. CIs per sample are the
OLS t-intervals from each regression's residuals (df = n_multipliers − 2). Anti-steerable samples (slope < 0)
fall into "non-matching raised" (s_neg > 0, s_pos ≥ 0), "matching lowered" (s_pos < 0, s_neg ≤ 0) and "both"
(s_pos < 0 < s_neg); ``slope < 0`` leaves no other case.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from interp_steer.errors import DataFormatError
from interp_steer.stats.proportions import clustered_proportion

KEYS = ["dataset", "sample_id"]
CATEGORIES = ("non_matching_raised", "matching_lowered", "both")


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise OLS slope of ``y[i]`` on ``x[i]`` and its standard error (``[n_samples, n_points]`` inputs)."""
    xc = x - x.mean(1, keepdims=True)
    sxx = (xc**2).sum(1)
    slope = (xc * (y - y.mean(1, keepdims=True))).sum(1) / sxx
    resid = y - y.mean(1, keepdims=True) - slope[:, None] * xc
    dof = x.shape[1] - 2
    se = np.sqrt((resid**2).sum(1) / dof / sxx) if dof > 0 else np.full(len(slope), np.nan)
    return slope, se


def decompose(propensities: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per sample: ``slope`` (of the propensity), ``s_pos``, ``s_neg`` with OLS CIs, and ``category``.

    ``propensities``: the study's propensity rows (``dataset, sample_id, multiplier, pos_logprob, neg_logprob``).
    """
    need = KEYS + ["multiplier", "pos_logprob", "neg_logprob"]
    missing = [c for c in need if c not in propensities.columns]
    if missing:
        raise DataFormatError(f"decompose: propensity table lacks column(s) {missing} (free-text study rows needed)")
    frame = propensities.sort_values(KEYS + ["multiplier"])
    sizes = frame.groupby(KEYS, sort=False).size()
    if sizes.nunique() != 1 or sizes.iloc[0] < 2:
        raise DataFormatError(f"decompose: every sample needs the same ≥ 2 multipliers, got sizes {sorted(set(sizes))}")
    n = int(sizes.iloc[0])
    values = frame[["multiplier", "pos_logprob", "neg_logprob"]].to_numpy(float).reshape(-1, n, 3)
    if not np.all(np.isfinite(values)):
        raise DataFormatError("decompose: non-finite multiplier or log-prob in the propensity table")
    x = values[:, :, 0]
    s_pos, se_pos = _ols(x, values[:, :, 1])
    s_neg, se_neg = _ols(x, values[:, :, 2])
    slope, _ = _ols(x, values[:, :, 1] - values[:, :, 2])
    t = stats.t.ppf(0.5 + confidence / 2, n - 2) if n > 2 else np.nan
    out = sizes.reset_index()[KEYS].assign(
        n_multipliers=n, slope=slope, s_pos=s_pos, s_pos_low=s_pos - t * se_pos, s_pos_high=s_pos + t * se_pos,
        s_neg=s_neg, s_neg_low=s_neg - t * se_neg, s_neg_high=s_neg + t * se_neg,
        baseline_propensity=_at_zero(values))
    out["anti"] = out["slope"] < 0
    out["category"] = np.select(
        [out["anti"] & (out["s_neg"] > 0) & (out["s_pos"] >= 0), out["anti"] & (out["s_pos"] < 0) & (out["s_neg"] <= 0),
         out["anti"] & (out["s_pos"] < 0) & (out["s_neg"] > 0)], list(CATEGORIES), default="steerable")
    return out


def _at_zero(values: np.ndarray) -> np.ndarray:
    """Propensity (pos − neg) at multiplier 0 where measured, else NaN."""
    x = values[:, :, 0]
    hit = np.isclose(x, 0.0)
    prop = values[:, :, 1] - values[:, :, 2]
    return np.where(hit.any(1), (prop * hit).sum(1) / np.maximum(hit.sum(1), 1), np.nan)


def add_token_counts(decomposed: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """Join ``counts`` (``sample_id, n_tokens_pos, n_tokens_neg``) and add per-token slopes ``s_pos_per_token`` and
    ``s_neg_per_token`` (the summed slope divided by the completion's token count)."""
    merged = decomposed.merge(counts, on="sample_id", how="left", validate="one_to_one")
    if merged[["n_tokens_pos", "n_tokens_neg"]].isna().any().any():
        missing = merged.loc[merged["n_tokens_pos"].isna(), "sample_id"].iloc[0]
        raise DataFormatError(f"add_token_counts: no token counts for sample {missing!r}")
    return merged.assign(s_pos_per_token=merged["s_pos"] / merged["n_tokens_pos"],
                         s_neg_per_token=merged["s_neg"] / merged["n_tokens_neg"])


def category_shares(decomposed: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Share of anti-steerable samples in each category (pooled), with dataset-clustered bootstrap 95% CIs."""
    rows = []
    anti = decomposed["anti"].to_numpy()
    for category in CATEGORIES:
        share, low, high = clustered_proportion(decomposed["category"].to_numpy() == category, anti,
                                                decomposed["dataset"].to_numpy(), n_boot=n_boot, seed=seed)
        rows.append(dict(category=category, n=int((decomposed["category"] == category).sum()), n_anti=int(anti.sum()),
                         share=share, low=low, high=high))
    return pd.DataFrame(rows)
