"""The method study's across-dataset statistics on hand-made tables, checked against scipy / statsmodels / numpy:
the Spearman correlation, the two-way variance decomposition, the matched-shift rule and the ranking verdicts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from interp_steer.analysis.method_comparison import matched_shift_kl
from interp_steer.analysis.method_ranking import dataset_or_method, method_ranking, variance_shares

METHODS = ["caa", "good", "same", "odd"]


def _summary(seed: int = 0, n_sets: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.1, 0.5, n_sets)
    values = {"caa": base, "good": base - 0.2 + rng.normal(0, 0.01, n_sets),
              "same": base + rng.normal(0, 0.05, n_sets), "odd": rng.uniform(0.1, 0.5, n_sets)}
    slopes = {"caa": np.full(n_sets, 2.0), "good": np.full(n_sets, 2.0) + rng.normal(0, 0.5, n_sets),
              "same": np.full(n_sets, 2.0), "odd": np.full(n_sets, 1.0) + rng.normal(0, 0.05, n_sets)}
    return pd.DataFrame([{"spec": f"set{d}", "method": m, "anti_steerable_fraction": values[m][d],
                          "mean_slope": slopes[m][d]} for m in METHODS for d in range(n_sets)])


def test_spearman_and_variance_shares_equal_scipy_and_statsmodels():
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    summary = _summary()
    result = dataset_or_method(summary, METHODS, n_boot=500, seed=1)
    grid = summary.pivot(index="spec", columns="method", values="anti_steerable_fraction")
    corr = result["correlation"].set_index("method")
    for method in ("good", "same", "odd"):
        assert math.isclose(corr.loc[method, "spearman"], spearmanr(grid[method], grid["caa"]).statistic, rel_tol=1e-9)
        assert corr.loc[method, "ci_low"] <= corr.loc[method, "spearman"] <= corr.loc[method, "ci_high"]
    fit = smf.ols("anti_steerable_fraction ~ C(spec) + C(method)", data=summary).fit()
    table = anova_lm(fit, typ=1)
    total = table["sum_sq"].sum()
    shares = result["variance"].set_index("source")["share"]
    assert math.isclose(shares["dataset"], table.loc["C(spec)", "sum_sq"] / total, rel_tol=1e-9)
    assert math.isclose(shares["method"], table.loc["C(method)", "sum_sq"] / total, rel_tol=1e-9)
    assert math.isclose(shares["residual"], table.loc["Residual", "sum_sq"] / total, rel_tol=1e-9)


def test_variance_shares_with_resampled_datasets_equal_the_decomposition_of_the_repeated_rows():
    values = np.random.default_rng(3).normal(size=(5, 3))
    weights = np.array([[2.0, 0.0, 1.0, 1.0, 1.0]])
    repeated = values[[0, 0, 2, 3, 4]]
    assert np.allclose(variance_shares(values, weights)[0], variance_shares(repeated, np.ones((1, 5)))[0])


def test_ranking_verdicts_are_no_stronger_than_the_intervals():
    summary = _summary()
    ranking = method_ranking(summary, n_boot=1000, seed=2).set_index(["purpose", "method"])
    grid = summary.pivot(index="spec", columns="method", values="anti_steerable_fraction")
    good = ranking.loc[("reliability", "good")]
    assert math.isclose(good.estimate, (grid["good"] - grid["caa"]).mean(), rel_tol=1e-9)
    assert good.verdict == "better than CAA" and good["rank"] == 1 and good.ci_high < 0
    same = ranking.loc[("reliability", "same")]
    assert same.verdict == ("not distinguishable from CAA" if same.ci_low <= 0 <= same.ci_high else same.verdict)
    assert same.ci_low <= 0 <= same.ci_high  # noise around CAA: no claim
    odd = ranking.loc[("strength", "odd")]  # half CAA's slope everywhere
    assert odd.verdict == "worse than CAA" and odd.ci_high < 1.0
    assert math.isclose(odd.estimate, (summary[summary.method == "odd"].mean_slope / 2.0).mean(), rel_tol=1e-9)


def _per_sample(slopes: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"spec": "s", "method": m, "sample_id": str(i), "slope": v}
                         for m, values in slopes.items() for i, v in enumerate(values)])


def _kl(method: str, scale: float) -> pd.DataFrame:
    return pd.DataFrame([{"spec": "s", "method": method, "passage_id": f"p{p}", "multiplier": m,
                          "kl": scale * (p + 1) * m * m} for p in range(3) for m in (0.5, 1.0, 2.0)])


@pytest.mark.parametrize("own,status", [([4.0, 4.0, 3.0], "ok"), ([1.0, 0.5, 1.5], "beyond"),
                                        ([-1.0, 0.5, -0.5], "no matched shift")])
def test_matched_multiplier_interpolation_and_its_refusals(own, status):
    caa = [2.0, 3.0, 2.5]
    per_sample = _per_sample({"caa": caa, "m": own})
    kl = pd.concat([_kl("caa", 1.0), _kl("m", 3.0)], ignore_index=True)
    table = matched_shift_kl(per_sample, kl, 1.0, n_boot=200).set_index("method")
    row = table.loc["m"]
    assert status in row.status
    assert math.isclose(table.loc["caa", "kl_matched_norm"], np.mean([1.0, 2.0, 3.0]), rel_tol=1e-12)
    if status == "ok":
        m_star = np.mean(caa) / np.mean(own)
        assert math.isclose(row.matched_multiplier, m_star, rel_tol=1e-12)
        # piecewise linear between 0, 0.5 and 1 (m* = 0.68): passage p has KL 3(p+1)·m² at the grid points
        by_hand = np.mean([np.interp(m_star, [0, 0.5, 1.0, 2.0], [0, 0.75 * k, 3 * k, 12 * k]) for k in (1, 2, 3)])
        assert math.isclose(row.kl_matched_shift, by_hand, rel_tol=1e-12)
        assert math.isclose(row.kl_ratio_to_reference, by_hand / 2.0, rel_tol=1e-12)
        assert row.matched_multiplier_ci_low <= m_star <= row.matched_multiplier_ci_high
    else:
        assert np.isnan(row.get("kl_matched_shift", np.nan))


def test_methods_on_fewer_datasets_are_left_out_of_the_decomposition_and_get_no_interval():
    summary = _summary()
    trained = summary[(summary.method == "good") & summary.spec.isin(["set0", "set1"])].assign(method="trained")
    summary = pd.concat([summary, trained], ignore_index=True)
    result = dataset_or_method(summary, [*METHODS, "trained"], n_boot=200)
    assert "trained" not in set(result["correlation"].method) and len(result["correlation"]) == 3
    assert result["variance"].methods.iloc[0] == "caa,good,same,odd"
    ranking = method_ranking(summary, n_boot=200).set_index(["purpose", "method"])
    row = ranking.loc[("reliability", "trained")]
    assert row.n_datasets == 2 and row.verdict == "too few datasets for an interval" and np.isnan(row.ci_low)
