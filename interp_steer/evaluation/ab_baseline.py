"""The unsteered A/B baseline a null needs: does the model answer with the behaviour-matching letter, or with (A)?

From the multiplier-0 rows of an A/B propensity table (:data:`~interp_steer.evaluation.propensity.PROPENSITY_COLUMNS`;
``propensity`` = logit(matching letter) − logit(other letter), ``is_A`` = the matching answer is (A)), per dataset:

* ``matching_rate``: share of samples whose unsteered propensity is > 0 (the model prefers the behaviour-matching
  letter of the two);
* ``a_rate`` (the letter preference): share of samples on which the model prefers (A), whatever (A) means there:
  propensity > 0 and is_A, or propensity < 0 and not is_A;
* ``mean_propensity`` (logits, toward the matching letter) and ``mean_a_minus_b`` (mean logit(A) − logit(B)).

An exact tie (propensity 0) counts one half in both rates. A model that picks (A) on almost every sample has
``a_rate`` ≈ 1 and a ``matching_rate`` near the dataset's share of is_A samples; then about half the samples sit
at a floor or ceiling where steering cannot move the answer, and "50% anti-steerable" says more about the
letter preference than about the vector.

Intervals: rates use the Wilson score interval (good near 0 and 1 where the percentile bootstrap collapses);
means use the percentile bootstrap over samples; ``level="across_datasets"`` rows (each dataset counted once)
use the two-level bootstrap of :mod:`interp_steer.stats.bootstrap` (the table in :mod:`interp_steer.stats`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from interp_steer.errors import ConfigError
from interp_steer.stats.bootstrap import RESULT_COLUMNS, Resample, bootstrap
from interp_steer.stats.intervals import mean_interval, proportion_interval

BASELINE_STATISTICS = ("matching_rate", "a_rate", "mean_propensity", "mean_a_minus_b")


def unsteered_answers(propensities: pd.DataFrame, by: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per unsteered A/B sample (multiplier 0; duplicates across vectors / layers dropped) with
    ``matching`` and ``picks_A`` (1, 0, or 0.5 for a tie) and ``a_minus_b`` (logit(A) − logit(B))."""
    required = ["dataset", "sample_id", "multiplier", "propensity", "is_A"]
    missing = [c for c in required if c not in propensities.columns]
    if missing:
        raise ConfigError(f"ab_baseline needs columns {missing} of a propensity table; got {list(propensities.columns)}")
    by = list(by) if by is not None else [c for c in ("dataset", "variant") if c in propensities.columns]
    rows = propensities[np.isclose(propensities["multiplier"].astype(float), 0.0)]
    if "kind" in rows.columns:
        rows = rows[rows["kind"] == "ab"]
    if rows.empty:
        raise ConfigError("ab_baseline: the propensity table has no A/B rows at multiplier 0; evaluate with a 0 "
                          "multiplier (e.g. the paper's -1.5…1.5) on A/B pairs")
    rows = rows.dropna(subset=["is_A"]).drop_duplicates(subset=by + ["sample_id"], keep="first")
    diff = rows["propensity"].astype(float).to_numpy()
    if not np.isfinite(diff).all():
        raise ConfigError("ab_baseline: non-finite unsteered propensities; recompute them")
    is_a = rows["is_A"].astype(bool).to_numpy()
    matching = np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))
    return rows[by + ["sample_id"]].assign(
        propensity=diff, is_A=is_a, matching=matching, picks_A=np.where(is_a, matching, 1.0 - matching),
        a_minus_b=np.where(is_a, diff, -diff)).reset_index(drop=True)


def ab_baseline(
    propensities: pd.DataFrame,
    *,
    by: Sequence[str] | None = None,
    levels: Sequence[str] = ("dataset", "across_datasets"),
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Per group of ``by`` (default ``dataset`` and ``variant`` where present) the :data:`BASELINE_STATISTICS` with
    intervals; plus, per ``variant``, the mean over datasets (``level="across_datasets"``, ``dataset`` None).
    Tidy: ``[*by, level, *RESULT_COLUMNS]``."""
    answers = unsteered_answers(propensities, by)
    by = [c for c in answers.columns if c not in ("sample_id", "propensity", "is_A", "matching", "picks_A", "a_minus_b")]
    records: list[dict] = []
    frames: list[pd.DataFrame] = []
    if "dataset" in levels:
        for i, (key, group) in enumerate(answers.groupby(by, sort=True, dropna=False)):
            key = key if isinstance(key, tuple) else (key,)
            n = len(group)
            base = {**dict(zip(by, key)), "level": "dataset", "n_samples": n, "n_datasets": 1, "confidence": confidence}
            for stat, column in (("matching_rate", "matching"), ("a_rate", "picks_A")):
                _, low, high = proportion_interval(float(group[column].sum()), n, confidence)
                records.append({**base, "statistic": stat, "estimate": float(group[column].mean()), "ci_low": low,
                                "ci_high": high, "n_boot": 0, "method": "wilson"})
            for stat, column in (("mean_propensity", "propensity"), ("mean_a_minus_b", "a_minus_b")):
                mean, low, high = mean_interval(group[column], n_boot=n_boot, confidence=confidence, seed=seed + i)
                records.append({**base, "statistic": stat, "estimate": mean, "ci_low": low,
                                "ci_high": high, "n_boot": n_boot if n >= 2 else 0, "method": "iid-percentile"})
        frames.append(pd.DataFrame.from_records(records))
    outer = [c for c in by if c != "dataset"]
    if "across_datasets" in levels and "dataset" in by:
        groups = answers.groupby(outer, sort=True, dropna=False) if outer else [((), answers)]
        for key, group in groups:
            key = key if isinstance(key, tuple) else (key,)
            if group["dataset"].nunique() < 2:
                continue

            def across(r: Resample, d: Mapping[str, np.ndarray]) -> np.ndarray:
                return np.column_stack([r.across_clusters(r.cluster_mean(d[c]))
                                        for c in ("matching", "picks_A", "propensity", "a_minus_b")])

            data = {c: group[c].to_numpy(dtype=float) for c in ("matching", "picks_A", "propensity", "a_minus_b")}
            res = bootstrap(data, across, clusters=group["dataset"].to_numpy(dtype=object), names=list(BASELINE_STATISTICS),
                            n_boot=n_boot, confidence=confidence, seed=seed)
            frames.append(res.to_frame(**dict(zip(outer, key)), dataset=None, level="across_datasets"))
    if not frames:
        raise ConfigError(f"ab_baseline: levels {list(levels)} give no rows; use 'dataset' and/or 'across_datasets'")
    out = pd.concat(frames, ignore_index=True)
    return out[by + ["level"] + RESULT_COLUMNS]
