"""Each interval function of interp_steer.stats against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st
from sklearn.metrics import roc_auc_score
from statsmodels.stats.proportion import proportion_confint

from interp_steer.stats import (
    anti_steerable_interval,
    auc_interval,
    mean_interval,
    median_interval,
    metric_difference_interval,
    metric_interval,
    paired_difference_interval,
    proportion_interval,
    within_group_auc_test,
)
from interp_steer.stats.proportions import clustered_proportion


def _scipy(x, statistic, seed=0, paired=False):
    ci = st.bootstrap(x, statistic, method="percentile", n_resamples=20000, random_state=seed, paired=paired,
                      vectorized=False).confidence_interval
    return ci.low, ci.high


def _close(ours, low, high, share=0.06):
    """``ours`` = (estimate, low, high) within ``share`` of the reference interval's width at both ends."""
    width = high - low
    assert abs(ours[1] - low) < share * width and abs(ours[2] - high) < share * width, (ours, low, high)


def test_mean_and_median_agree_with_scipy_percentile_bootstrap():
    x = np.random.default_rng(0).lognormal(size=60)
    mean = mean_interval(x, n_boot=20000, seed=1)
    assert mean.estimate == pytest.approx(x.mean())
    _close(mean, *_scipy((x,), np.mean))
    median = median_interval(x, n_boot=20000, seed=1)
    assert median.estimate == pytest.approx(np.median(x))
    _close(median, *_scipy((x,), np.median), share=0.1)


def test_clustered_mean_and_median_count_each_dataset_once():
    rng = np.random.default_rng(1)
    sizes = [4, 30, 6, 10]
    labels = np.repeat(list("wxyz"), sizes)
    y = rng.normal(size=len(labels)) + np.repeat([0.0, 3.0, -1.0, 1.0], sizes)
    means = [y[labels == g].mean() for g in "wxyz"]
    medians = [np.median(y[labels == g]) for g in "wxyz"]
    m = mean_interval(y, clusters=labels, n_boot=500)
    assert m.estimate == pytest.approx(np.mean(means)) and m.estimate != pytest.approx(y.mean())
    assert median_interval(y, clusters=labels, n_boot=500).estimate == pytest.approx(np.median(medians))
    # datasets are the unit: far wider than the i.i.d. interval over the 50 rows
    iid = mean_interval(y, n_boot=500)
    assert (m.high - m.low) > 2 * (iid.high - iid.low)


def test_anti_steerable_fraction_is_the_share_below_zero_with_a_wilson_interval():
    from statsmodels.stats.proportion import proportion_confint

    slopes = np.random.default_rng(2).normal(0.3, 1.0, size=80)
    out = anti_steerable_interval(slopes, n_boot=4000, seed=3)
    k = int(np.sum(slopes < 0))
    assert out.estimate == pytest.approx(k / 80)
    assert out[1:] == pytest.approx(proportion_confint(k, 80, alpha=0.05, method="wilson"), abs=1e-12)
    # none of n: a real interval (the percentile bootstrap would give [0, 0]); upper end z²/(n + z²)
    none = anti_steerable_interval(np.abs(slopes[:16]) + 0.1)
    z = 1.959963984540054
    assert none == pytest.approx((0.0, 0.0, z * z / (16 + z * z)))
    # a slope of 0 is not anti-steerable, a NaN slope is missing
    assert anti_steerable_interval([-1.0, 0.0, 1.0, np.nan], n_boot=100).estimate == pytest.approx(1 / 3)


def test_anti_steerable_fraction_across_datasets_is_a_two_level_bootstrap():
    rng = np.random.default_rng(5)
    slopes = rng.normal(0.3, 1.0, size=60)
    labels = np.repeat(["a", "b", "c"], 20)
    out = anti_steerable_interval(slopes, clusters=labels, n_boot=4000, seed=3)
    assert out.estimate == pytest.approx(np.mean([np.mean(slopes[labels == g] < 0) for g in "abc"]))
    same = mean_interval((slopes < 0).astype(float), clusters=labels, n_boot=4000, seed=3)
    assert tuple(out) == pytest.approx(tuple(same))


def test_paired_difference_uses_pairs_and_drops_incomplete_ones():
    rng = np.random.default_rng(4)
    a = rng.normal(size=50)
    b = a + rng.normal(0.5, 0.2, size=50)  # strongly paired: the paired interval is narrow
    out = paired_difference_interval(b, a, n_boot=20000, seed=0)
    assert out.estimate == pytest.approx(np.mean(b - a))
    _close(out, *_scipy((b, a), lambda u, v: np.mean(u - v), paired=True))
    assert out.high - out.low < 0.2
    b[0], a[1] = np.nan, np.nan
    assert paired_difference_interval(b, a, n_boot=100).estimate == pytest.approx(np.mean((b - a)[2:]))
    with pytest.raises(Exception, match="pair"):
        paired_difference_interval([1.0, 2.0], [1.0])


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (5, 10), (10, 10), (1, 200), (37.5, 80)])
def test_wilson_equals_statsmodels(k, n):
    out = proportion_interval(k, n)
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert out.estimate == pytest.approx(k / n)
    assert out.low == pytest.approx(low, abs=1e-12) and out.high == pytest.approx(high, abs=1e-12)
    low90, high90 = proportion_confint(k, n, alpha=0.10, method="wilson")
    assert proportion_interval(k, n, confidence=0.9)[1:] == pytest.approx((low90, high90), abs=1e-12)


def test_auc_and_metric_intervals_against_sklearn_and_a_stratified_loop():
    rng = np.random.default_rng(5)
    labels = rng.random(120) < 0.3
    scores = rng.normal(size=120) + labels
    out = auc_interval(scores, labels, strata=labels, n_boot=2000, seed=1)
    assert out.estimate == pytest.approx(roc_auc_score(labels, scores))
    # independent: stratified resampling with integer draws, AUC as the share of (positive, negative) pairs ordered
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    boot = []
    for _ in range(2000):
        p, q = scores[pos[rng.integers(0, len(pos), len(pos))]], scores[neg[rng.integers(0, len(neg), len(neg))]]
        boot.append(np.mean((p[:, None] > q[None, :]) + 0.5 * (p[:, None] == q[None, :])))
    _close(out, *np.percentile(boot, [2.5, 97.5]), share=0.15)
    r = metric_interval(lambda i: float(st.spearmanr(scores[i], labels[i])[0]), 120, n_boot=300)
    assert r.estimate == pytest.approx(st.spearmanr(scores, labels)[0])
    diff = metric_difference_interval(lambda i: roc_auc_score(labels[i], scores[i]),
                                      lambda i: roc_auc_score(labels[i], -scores[i]), 120, strata=labels, n_boot=300)
    assert diff.estimate == pytest.approx(2 * roc_auc_score(labels, scores) - 1)
    assert diff.low > 0


def test_clustered_proportion_and_within_group_auc_against_hand_cluster_loops():
    rng = np.random.default_rng(6)
    clusters = np.repeat(np.arange(8), 12)
    eligible = rng.random(96) < 0.6
    hits = eligible & (rng.random(96) < np.repeat(rng.uniform(0.1, 0.9, 8), 12))
    share, low, high = clustered_proportion(hits, eligible, clusters, n_boot=20000, seed=2)
    assert share == pytest.approx(hits.sum() / eligible.sum())
    num = np.bincount(clusters, weights=hits & eligible)
    den = np.bincount(clusters, weights=eligible)
    draws = rng.integers(0, 8, size=(20000, 8))
    boot = num[draws].sum(1) / den[draws].sum(1)
    _close((share, low, high), *np.percentile(boot, [2.5, 97.5]), share=0.06)

    labels = rng.random(96) < 0.5
    scores = rng.normal(size=96) + 0.8 * labels
    res = within_group_auc_test(scores, labels, clusters, n_boot=20000, n_perm=200, seed=3)
    per_group = np.array([roc_auc_score(labels[clusters == g], scores[clusters == g]) for g in range(8)])
    assert res.auc == pytest.approx(per_group.mean())
    boot = per_group[rng.integers(0, 8, size=(20000, 8))].mean(1)
    _close((res.auc, res.low, res.high), *np.percentile(boot, [2.5, 97.5]), share=0.06)


def test_nan_policy_and_small_n_of_the_interval_functions():
    x = np.array([1.0, np.nan, 3.0, np.inf, 5.0, 2.0])
    assert mean_interval(x, n_boot=300, seed=4) == mean_interval(x[np.isfinite(x)], n_boot=300, seed=4)
    for f in (mean_interval, median_interval, anti_steerable_interval):
        empty = f([np.nan], n_boot=100)
        assert all(np.isnan(v) for v in empty)
        one = f([-2.0], n_boot=100)
        if f is anti_steerable_interval:  # Wilson: 1 of 1 → [1/(1 + z²), 1]
            assert one == pytest.approx((1.0, 1 / (1 + 1.959963984540054 ** 2), 1.0))
        else:
            assert np.isfinite(one.estimate) and np.isnan(one.low) and np.isnan(one.high)
    assert all(np.isnan(v) for v in proportion_interval(0, 0))
    assert all(np.isnan(v) for v in metric_interval(lambda i: 0.0, 0))
    # one cluster: the clustered statistic falls back to rows
    assert mean_interval([1.0, 2.0, 4.0], clusters=["a"] * 3, n_boot=200) == mean_interval([1.0, 2.0, 4.0], n_boot=200)


def test_deprecated_evaluation_bootstrap_ci_is_the_engine():
    from interp_steer.evaluation import bootstrap_ci

    x = np.random.default_rng(7).normal(size=25)
    with pytest.warns(DeprecationWarning, match="stats.intervals"):
        old = bootstrap_ci(x, "mean", n_boot=500, seed=2)
    assert (old.estimate[0], old.ci_low[0], old.ci_high[0]) == pytest.approx(tuple(mean_interval(x, n_boot=500, seed=2)))
    with pytest.warns(DeprecationWarning), pytest.raises(Exception, match="non-finite"):
        bootstrap_ci([1.0, np.nan, 2.0])
