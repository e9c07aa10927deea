"""The spurious-factor variance split (is_A, + is_Yes, unexplained) against statsmodels' type-I ANOVA."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.formula.api import ols
from statsmodels.stats.anova import anova_lm

from interp_steer.evaluation.spurious import spurious_factor_variance


def _per_sample(seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for d, (b_a, b_y) in enumerate([(1.5, 0.7), (0.0, 0.0), (-0.8, 1.2)]):
        n = 30 + 5 * d
        a, yes = rng.random(n) < 0.5, rng.random(n) < 0.4
        frames.append(pd.DataFrame({"dataset": f"d{d}", "is_A": a, "is_Yes": yes,
                                    "slope": rng.normal(size=n) + b_a * a + b_y * yes + 0.3 * a * yes}))
    return pd.concat(frames, ignore_index=True)


def test_split_equals_anova_type_one_sums_of_squares():
    per = _per_sample()
    out = spurious_factor_variance(per).set_index("dataset")
    for d, group in per.groupby("dataset"):
        table = anova_lm(ols("slope ~ is_A + is_Yes", group.astype({"is_A": float, "is_Yes": float})).fit(), typ=1)
        dof = len(group) - 1
        assert out.at[d, "var_is_A"] * dof == pytest.approx(table.at["is_A", "sum_sq"], rel=1e-9)
        assert out.at[d, "var_is_Yes"] * dof == pytest.approx(table.at["is_Yes", "sum_sq"], rel=1e-9)
        assert out.at[d, "var_unexplained"] * dof == pytest.approx(table.at["Residual", "sum_sq"], rel=1e-9)
        assert out.at[d, "var_total"] == pytest.approx(group.slope.var(ddof=1))
        # the relative split is the R² columns
        assert (out.at[d, "var_is_A"] + out.at[d, "var_is_Yes"]) / out.at[d, "var_total"] == pytest.approx(
            out.at[d, "r2_is_A_is_Yes"])


def test_split_without_is_yes_and_with_a_constant_factor():
    per = _per_sample(1)
    per["is_Yes"] = per["is_Yes"].astype(object)
    per.loc[per.dataset == "d0", "is_Yes"] = None
    per.loc[per.dataset == "d1", "is_A"] = True  # constant: explains nothing
    out = spurious_factor_variance(per).set_index("dataset")
    assert np.isnan(out.at["d0", "var_is_Yes"])
    d0 = per[per.dataset == "d0"]
    table = anova_lm(ols("slope ~ is_A", d0.astype({"is_A": float})).fit(), typ=1)
    assert out.at["d0", "var_unexplained"] * (len(d0) - 1) == pytest.approx(table.at["Residual", "sum_sq"])
    assert out.at["d1", "var_is_A"] == 0.0
    d1 = per[per.dataset == "d1"]
    fit = np.polyfit(d1.is_Yes.astype(float), d1.slope, 1)
    resid = d1.slope - np.polyval(fit, d1.is_Yes.astype(float))
    assert out.at["d1", "var_unexplained"] == pytest.approx((resid ** 2).sum() / (len(d1) - 1))
