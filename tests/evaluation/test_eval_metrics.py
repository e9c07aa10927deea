"""Steerability metrics and the spurious-factor regression against numpy / scipy / an independent lstsq."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

from interp_steer.errors import ConfigError
from interp_steer.evaluation import random_like, spurious_factor_variance, steerability, summarize_steerability
from interp_steer.steering import SteeringVector


def random_propensities(seed=0, n_samples=40, datasets=("d1", "d2")):
    rng = np.random.default_rng(seed)
    mults = np.array([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5])
    rows = []
    for d in datasets:
        for s in range(n_samples):
            slope = rng.normal(0.5, 1.0)
            ys = slope * mults + rng.normal(0, 0.7, size=len(mults)) + rng.normal()
            if s % 5 == 0:
                ys[3] = ys[0]  # a rank tie, to exercise average ranks
            order = rng.permutation(len(mults))  # rows in shuffled multiplier order
            for i in order:
                rows.append({"dataset": d, "variant": "BASE", "layer": 1, "hook_name": "blocks.1.hook_resid_post",
                             "vector": "v", "sample_id": f"s{s}", "multiplier": mults[i], "propensity": ys[i],
                             "kind": "ab", "is_A": bool(rng.integers(2)), "is_Yes": bool(rng.integers(2))})
    frame = pd.DataFrame(rows)
    # make is_A / is_Yes constant per sample
    first = frame.groupby(["dataset", "sample_id"])[["is_A", "is_Yes"]].transform("first")
    frame[["is_A", "is_Yes"]] = first.astype("boolean")
    return frame


def test_slope_r2_spearman_match_numpy_scipy():
    frame = random_propensities()
    per = steerability(frame)
    assert len(per) == 80
    for _, row in per.sample(15, random_state=0).iterrows():
        curve = frame[(frame.dataset == row.dataset) & (frame.sample_id == row.sample_id)].sort_values("multiplier")
        x, y = curve.multiplier.to_numpy(), curve.propensity.to_numpy()
        slope, intercept = np.polyfit(x, y, 1)
        assert row.slope == pytest.approx(slope, abs=1e-10)
        assert row.intercept == pytest.approx(intercept, abs=1e-10)
        resid = y - (slope * x + intercept)
        assert row.r2 == pytest.approx(1 - resid @ resid / ((y - y.mean()) @ (y - y.mean())), abs=1e-10)
        assert row.spearman == pytest.approx(spearmanr(x, y).statistic, abs=1e-10)
        assert row.sign_flip == (np.sign(y[0]) * np.sign(y[-1]) < 0)
        assert row.propensity_at_min == y[0] and row.propensity_at_max == y[-1]


def test_summary_matches_manual_aggregation():
    per = steerability(random_propensities(seed=1))
    summary = summarize_steerability(per).set_index("dataset")
    for d, group in per.groupby("dataset"):
        s = group.slope.to_numpy()
        assert summary.at[d, "mean_slope"] == pytest.approx(s.mean())
        assert summary.at[d, "median_slope"] == pytest.approx(np.median(s))
        assert summary.at[d, "std_slope"] == pytest.approx(s.std(ddof=1))
        assert summary.at[d, "anti_steerable_fraction"] == pytest.approx((s < 0).mean())
        assert summary.at[d, "sign_flip_fraction"] == pytest.approx(group.sign_flip.astype(float).mean())
        assert summary.at[d, "n_samples"] == len(s)


def test_constant_curve_gives_nan_r2_and_errors():
    frame = pd.DataFrame({"sample_id": ["a"] * 3, "multiplier": [-1.0, 0.0, 1.0], "propensity": [2.0, 2.0, 2.0]})
    per = steerability(frame)
    assert per.slope.iloc[0] == 0.0 and np.isnan(per.r2.iloc[0]) and np.isnan(per.spearman.iloc[0])
    with pytest.raises(ConfigError):
        steerability(frame.drop(columns="propensity"))
    with pytest.raises(ConfigError):
        steerability(frame.iloc[:0])


def test_random_like_keeps_norm_and_is_seeded():
    v = SteeringVector({3: torch.arange(64.0)})
    r1, r2, r3 = random_like(v, 1), random_like(v, 1), random_like(v, 2)
    assert r1[3].norm() == pytest.approx(float(v[3].norm()), rel=1e-5)
    assert torch.equal(r1[3], r2[3]) and not torch.equal(r1[3], r3[3])
    assert abs(r1.cosine(v)["blocks.3.hook_resid_post"]) < 0.5
    assert r1.provenance.method == "random"


def _lstsq_r2(y, x):
    design = np.column_stack([np.ones(len(y)), x])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ beta
    return 1 - resid @ resid / ((y - y.mean()) @ (y - y.mean()))


def test_spurious_variance_matches_lstsq():
    per = steerability(random_propensities(seed=2))
    # inject an is_A effect into d1 so the R² is not trivially ~0
    per.loc[(per.dataset == "d1") & per.is_A.astype(bool), "slope"] += 2.0
    out = spurious_factor_variance(per).set_index("dataset")
    for d, group in per.groupby("dataset"):
        y = group.slope.to_numpy(float)
        a, yes = group.is_A.astype(float).to_numpy(), group.is_Yes.astype(float).to_numpy()
        assert out.at[d, "r2_is_A"] == pytest.approx(_lstsq_r2(y, a[:, None]), abs=1e-10)
        assert out.at[d, "r2_is_A_is_Yes"] == pytest.approx(_lstsq_r2(y, np.column_stack([a, yes])), abs=1e-10)
        assert out.at[d, "r2_increment_is_Yes"] == pytest.approx(out.at[d, "r2_is_A_is_Yes"] - out.at[d, "r2_is_A"])
    assert out.at["d1", "r2_is_A"] > 0.1


def test_spurious_without_is_yes_and_errors():
    per = steerability(random_propensities(seed=3, datasets=("d",)))
    per["is_Yes"] = pd.array([pd.NA] * len(per), dtype="boolean")
    out = spurious_factor_variance(per)
    assert np.isfinite(out.r2_is_A.iloc[0]) and np.isnan(out.r2_is_A_is_Yes.iloc[0])
    with pytest.raises(ConfigError):
        spurious_factor_variance(per.drop(columns="is_A"))
