"""Groups with a margin (bootstrap CI of the slope) and the held-out steerability predictor, on synthetic data
with a known answer (no model)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interp_steer.analysis.predictor import (
    auc,
    evaluate_predictors,
    logistic_fit,
    out_of_fold,
    r_squared,
    ridge_fit,
    stratified_folds,
    top_correlated,
)
from interp_steer.analysis.slope_groups import bootstrap_slope, group_sizes, slope_intervals
from interp_steer.errors import ConfigError

MULTS = np.array([-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0])


def _curves(slopes, noise, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i, slope in enumerate(slopes):
        for m in MULTS:
            rows.append({"sample_id": f"s{i}", "multiplier": m, "propensity": 0.3 + slope * m + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def test_slope_groups_recover_the_known_groups():
    slopes = [1.0] * 10 + [-1.0] * 6 + [0.0] * 8
    table = slope_intervals(_curves(slopes, noise=0.1), n_boot=500)
    expected = ["steerable"] * 10 + ["anti-steerable"] * 6
    assert list(table["group"].astype(str))[:16] == expected
    # a true slope of 0 is insensitive unless its CI misses 0 (rare at 95 %)
    assert (table["group"].astype(str).iloc[16:] == "insensitive").sum() >= 6
    assert group_sizes(table["group"])["steerable"] == 10
    assert "lies above 0" in table.attrs["rule"] and "9 multipliers" in table.attrs["rule"]
    fitted = np.polyfit(MULTS, _curves([1.0], 0.1)["propensity"], 1)[0]
    assert table["slope"].iloc[0] == pytest.approx(fitted, abs=1e-12)


def test_sign_alone_overcounts_what_the_margin_does_not():
    slopes = [0.0] * 40  # nothing steers: the sign puts ~half of them in the anti-steerable tail
    table = slope_intervals(_curves(slopes, noise=0.5, seed=3), n_boot=500)
    assert (table["slope"] < 0).sum() >= 10
    assert (table["group"].astype(str) != "insensitive").sum() <= 6


@pytest.mark.parametrize("method", ["residuals", "multipliers"])
def test_slope_ci_coverage_is_near_nominal(method):
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(150):
        y = 0.4 * MULTS + rng.normal(0, 0.3, len(MULTS))
        _, low, high = bootstrap_slope(MULTS, y, method=method, n_boot=400, rng=rng)
        covered += low <= 0.4 <= high
    assert 0.8 <= covered / 150 <= 1.0


def test_slope_intervals_rejects_bad_input():
    with pytest.raises(ConfigError, match="3 distinct"):
        bootstrap_slope([0, 1, 0, 1], [1, 2, 1, 2])
    with pytest.raises(ConfigError, match="method"):
        bootstrap_slope(MULTS, MULTS, method="jackknife")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="lacks"):
        slope_intervals(pd.DataFrame({"sample_id": ["a"], "propensity": [1.0]}))


# ----------------------------------------------------------------------------- predictor
def test_models_match_scikit_learn():
    from sklearn.linear_model import LogisticRegression, Ridge

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = X @ [1.0, -2.0, 0.5] + rng.normal(size=80)
    b0, coef = ridge_fit(X, y, alpha=2.0)
    ref = Ridge(alpha=2.0).fit(X, y)
    np.testing.assert_allclose(coef, ref.coef_, atol=1e-10)
    assert b0 == pytest.approx(ref.intercept_, abs=1e-10)
    labels = (y > 0).astype(float)
    b0, coef = logistic_fit(X, labels, alpha=1.0)
    ref = LogisticRegression(C=1.0, tol=1e-12, max_iter=10000).fit(X, labels)
    np.testing.assert_allclose(coef, ref.coef_[0], atol=1e-5)
    assert b0 == pytest.approx(ref.intercept_[0], abs=1e-5)


def test_auc_and_r2_against_references():
    from sklearn.metrics import r2_score, roc_auc_score

    rng = np.random.default_rng(2)
    scores, labels = rng.normal(size=50).round(1), rng.integers(0, 2, 50)
    assert auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    y, pred = rng.normal(size=30), rng.normal(size=30)
    assert r_squared(pred, y) == pytest.approx(r2_score(y, pred), abs=1e-12)


def test_folds_are_stratified_and_never_train_on_the_predicted_sample():
    labels = np.array([1] * 9 + [0] * 21)
    folds = stratified_folds(labels, 5, seed=4)
    assert sorted(np.bincount(folds)) == [6] * 5
    assert all(np.bincount(folds[labels == 1], minlength=5) >= 1)
    seen = []
    X = np.arange(30, dtype=float)[:, None]
    out_of_fold(X, labels.astype(float), folds, kind="ridge", on_fit=lambda tr, te: seen.append((tr, te)))
    tested = np.concatenate([te for _, te in seen])
    assert sorted(tested.tolist()) == list(range(30))  # every sample predicted exactly once
    assert all(not set(tr) & set(te) for tr, te in seen)


def test_predictor_finds_the_known_signal_and_the_baseline_does_not():
    rng = np.random.default_rng(5)
    n = 300
    signal, base = rng.normal(size=n), rng.normal(size=n)
    slope = 2.0 * signal + rng.normal(size=n)  # population R² of the signal = 4 / 5
    X = pd.DataFrame({"baseline_propensity": base, "signal": signal, "noise": rng.normal(size=n)})
    table, oof = evaluate_predictors(X, slope, {"baseline propensity": ["baseline_propensity"],
                                                "all": ["baseline_propensity", "signal", "noise"]}, n_boot=300)
    get = table.set_index(["predictor", "metric"])
    assert get.loc[("all", "R²"), "value"] == pytest.approx(0.8, abs=0.07)
    assert get.loc[("all", "AUC"), "vs_ci_low"] > 0.2  # far better than the baseline on held-out samples
    assert get.loc[("baseline propensity", "R²"), "value"] < 0.03
    low, high = get.loc[("random", "AUC"), ["ci_low", "ci_high"]]
    assert low < 0.5 < high
    assert len(oof) == n and set(oof["fold"]) == set(range(5))


def test_in_fold_selection_leaves_no_leak_that_selection_on_all_samples_would_show():
    rng = np.random.default_rng(6)
    n, p = 40, 500
    latents = np.abs(rng.normal(size=(n, p)))  # pure noise: no latent predicts the slope
    slope = rng.normal(size=n)
    folds = stratified_folds((slope < 0).astype(int), 5, seed=0)
    honest = out_of_fold(latents, slope, folds, kind="ridge", select=top_correlated(5))
    leaked_cols = top_correlated(5)(latents, slope)  # chosen on every sample, then "validated"
    leaked = out_of_fold(latents[:, leaked_cols], slope, folds, kind="ridge")
    assert r_squared(honest, slope) < 0.1
    assert r_squared(leaked, slope) > r_squared(honest, slope) + 0.2
    X = pd.DataFrame({"baseline_propensity": rng.normal(size=n)})
    table, _ = evaluate_predictors(X, slope, {"baseline propensity": ["baseline_propensity"]},
                                   extra={"sae": (latents, top_correlated(5))}, n_boot=300)
    sae_auc = table[(table["predictor"] == "sae") & (table["metric"] == "AUC")].iloc[0]
    assert sae_auc["ci_low"] < 0.5 < sae_auc["ci_high"] or sae_auc["value"] < 0.7
