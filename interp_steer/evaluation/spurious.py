"""How much per-sample steerability variance spurious prompt factors explain (Tan et al. 2024, Sec. 5).

For each dataset: OLS of per-sample slope on ``is_A`` (is the positive answer option A?), then on
``is_A + is_Yes`` (does the positive answer mean "Yes"?), each with an intercept; reports both R² and the
increment. ``is_Yes`` is unknown (NaN) for datasets whose loader does not record it: then the second model and
the increment are NaN.

The paper's bars are absolute: the sample variance of the per-sample slope (``ddof=1``, in (propensity units per
unit multiplier)²) split by sequential (type-I) OLS sums of squares into the part explained by ``is_A``, the part
explained additionally by ``is_Yes`` and the unexplained residual: ``var_total = var_is_A + var_is_Yes +
var_unexplained``; each times ``n − 1`` is the ``sum_sq`` of ``statsmodels.stats.anova.anova_lm(typ=1)`` for
``slope ~ is_A + is_Yes``. :func:`sequential_sums_of_squares` computes them from weighted moments, so the
bootstrap (:mod:`interp_steer.stats.bootstrap`) evaluates them for thousands of resamples at once.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm

from interp_steer.errors import ConfigError


def _r2(y: np.ndarray, factors: np.ndarray) -> float:
    """R² of OLS with intercept; NaN when y is constant or there are fewer samples than parameters."""
    design = sm.add_constant(factors.astype(float), has_constant="add")
    if len(y) <= design.shape[1] or np.allclose(y, y[0]):
        return float("nan")
    return float(sm.OLS(y, design).fit().rsquared)


MOMENTS = ("1", "y", "a", "e", "yy", "aa", "ee", "ay", "ey", "ae")
"""Weighted sums the split needs: of 1, y (slope), a (is_A), e (is_Yes) and their products."""


def moment_terms(y: np.ndarray, a: np.ndarray, e: np.ndarray) -> dict[str, np.ndarray]:
    """The per-sample terms whose (weighted) sums are :data:`MOMENTS` (``e`` may be all zeros when unknown)."""
    return {"1": np.ones_like(y), "y": y, "a": a, "e": e, "yy": y * y, "aa": a * a, "ee": e * e, "ay": a * y,
            "ey": e * y, "ae": a * e}


def sequential_sums_of_squares(sums: Mapping[str, np.ndarray | float]) -> dict[str, np.ndarray | float]:
    """Type-I sums of squares of ``y ~ a + e`` from weighted sums (:data:`MOMENTS`), elementwise over any shape.

    With 0-dim sums the entries come back as numpy scalars (``np.float64``, a ``float``) or 0-dim arrays.

    Returns ``total`` (centred sum of squares of y), ``a`` (explained by a), ``e`` (explained by e after a, by
    Frisch–Waugh: the squared covariance of y with e's residual on a, over that residual's sum of squares) and
    ``residual``. A factor that is constant (or, for e, collinear with a) explains 0.
    """
    w = sums["1"]
    with np.errstate(invalid="ignore", divide="ignore"):
        def centred(p: str, q: str) -> np.ndarray | float:
            key = p + q if p + q in sums else q + p
            return sums[key] - sums[p] * sums[q] / w

        s_yy, s_aa, s_ee = centred("y", "y"), centred("a", "a"), centred("e", "e")
        s_ay, s_ey, s_ae = centred("a", "y"), centred("e", "y"), centred("a", "e")
        tol = 1e-9 * np.maximum(w, 1.0)
        has_a = s_aa > tol
        ss_a = np.where(has_a, s_ay ** 2 / np.where(has_a, s_aa, 1.0), 0.0)
        e_rest = s_ee - np.where(has_a, s_ae ** 2 / np.where(has_a, s_aa, 1.0), 0.0)
        ey_rest = s_ey - np.where(has_a, s_ae * s_ay / np.where(has_a, s_aa, 1.0), 0.0)
        has_e = e_rest > tol
        ss_e = np.where(has_e, ey_rest ** 2 / np.where(has_e, e_rest, 1.0), 0.0)
    return {"total": s_yy, "a": ss_a, "e": ss_e, "residual": np.maximum(s_yy - ss_a - ss_e, 0.0)}


def spurious_factor_variance(
    per_sample: pd.DataFrame,
    *,
    by: Sequence[str] = ("dataset",),
    slope: str = "slope",
) -> pd.DataFrame:
    """Per group: ``n_samples``, ``r2_is_A``, ``r2_is_A_is_Yes``, ``r2_increment_is_Yes`` and the absolute split
    ``var_total``, ``var_is_A``, ``var_is_Yes`` (NaN when is_Yes is unknown), ``var_unexplained`` (see the module
    docstring)."""
    by = list(by)
    missing = [c for c in by + [slope, "is_A", "is_Yes"] if c not in per_sample.columns]
    if missing:
        raise ConfigError(f"spurious_factor_variance needs columns {missing} (pass the output of steerability())")
    records = []
    for key, group in per_sample.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        usable = group.dropna(subset=[slope, "is_A"])
        y = usable[slope].to_numpy(dtype=float)
        is_a = usable["is_A"].astype(float).to_numpy()
        r2_a = _r2(y, is_a[:, None]) if len(usable) else float("nan")
        with_yes = usable.dropna(subset=["is_Yes"])
        if len(with_yes) == len(usable) and len(usable):
            both = np.column_stack([is_a, with_yes["is_Yes"].astype(float).to_numpy()])
            r2_ay = _r2(y, both)
        else:
            r2_ay = float("nan")
        known_yes = len(with_yes) == len(usable) and len(usable) > 0
        e = with_yes["is_Yes"].astype(float).to_numpy() if known_yes else np.zeros_like(y)
        split = sequential_sums_of_squares({k: np.asarray(v.sum()) for k, v in moment_terms(y, is_a, e).items()})
        dof = len(usable) - 1
        var = {k: float(v) / dof if dof > 0 else float("nan") for k, v in split.items()}
        records.append({**dict(zip(by, key)), "n_samples": len(usable), "r2_is_A": r2_a,
                        "r2_is_A_is_Yes": r2_ay, "r2_increment_is_Yes": r2_ay - r2_a,
                        "var_total": var["total"], "var_is_A": var["a"],
                        "var_is_Yes": var["e"] if known_yes else float("nan"), "var_unexplained": var["residual"]})
    return pd.DataFrame.from_records(records)
