"""Bootstrap intervals: coverage on simulated data, agreement with scipy.stats.bootstrap, hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint
import scipy.stats as st

from interp_steer.errors import ConfigError
from interp_steer.evaluation.spurious import spurious_factor_variance
from interp_steer.evaluation.study_intervals import correlation_ci, spurious_cis, steerability_cis
from interp_steer.stats.bootstrap import Resample, _draw, bootstrap
from interp_steer.stats.weighted import weighted_correlation, weighted_median, weighted_ranks

N_EXPERIMENTS = 400


def _iid(values, statistic="mean", **options):
    """The engine on one column: i.i.d. bootstrap of its mean or median."""
    stat = {"mean": lambda r, d: r.pooled_mean(d["x"]), "median": lambda r, d: weighted_median(d["x"], r.weights)}
    return bootstrap({"x": np.asarray(values, dtype=float)}, stat[statistic], **options)


def _covered(result, truth):
    return (result.ci_low <= truth) & (truth <= result.ci_high)


@pytest.mark.parametrize("kind", ["normal", "skewed"])
def test_iid_coverage_of_the_mean(kind):
    # 400 experiments at once: one cluster per experiment, samples resampled within (each an i.i.d. bootstrap)
    rng = np.random.default_rng(11)
    n = 40
    values = rng.normal(2.0, 1.0, size=(N_EXPERIMENTS, n)) if kind == "normal" else rng.exponential(1.0, size=(N_EXPERIMENTS, n))
    truth = 2.0 if kind == "normal" else 1.0
    res = bootstrap({"x": values.ravel()}, lambda r, d: r.cluster_mean(d["x"]), clusters=np.repeat(np.arange(N_EXPERIMENTS), n),
                    resample_clusters=False, n_boot=1000, seed=3)
    np.testing.assert_allclose(res.estimate, values.mean(axis=1))
    coverage = _covered(res, truth).mean()
    assert 0.91 <= coverage <= 0.99, coverage


def test_clustered_data_naive_bootstrap_undercovers_cluster_bootstrap_does_not():
    rng = np.random.default_rng(5)
    k, m, truth = 20, 10, 0.0
    naive, cluster = [], []
    for i in range(N_EXPERIMENTS):
        y = np.repeat(rng.normal(truth, 1.0, size=k), m) + rng.normal(0.0, 1.0, size=k * m)  # ICC 0.5
        labels = np.repeat(np.arange(k), m)
        naive.append(_covered(_iid(y, n_boot=400, seed=i), truth)[0])
        res = bootstrap({"y": y}, lambda r, d: r.across_clusters(r.cluster_mean(d["y"])), clusters=labels, n_boot=400, seed=i)
        cluster.append(_covered(res, truth)[0])
    assert np.mean(naive) < 0.85, np.mean(naive)  # design effect 1 + (m - 1) ICC = 5.5: far too narrow
    assert 0.91 <= np.mean(cluster) <= 0.99, np.mean(cluster)


@pytest.mark.parametrize("method", ["percentile", "bca"])
@pytest.mark.parametrize("statistic", ["mean", "median"])
def test_agrees_with_scipy_bootstrap(method, statistic):
    x = np.random.default_rng(0).exponential(size=35)
    ours = _iid(x, statistic, method=method, n_boot=20000, seed=1)
    theirs = st.bootstrap((x,), getattr(np, statistic), method="BCa" if method == "bca" else method, n_resamples=20000,
                          random_state=1).confidence_interval
    width = theirs.high - theirs.low
    assert ours.estimate[0] == pytest.approx(getattr(np, statistic)(x))
    assert abs(ours.ci_low[0] - theirs.low) < 0.06 * width and abs(ours.ci_high[0] - theirs.high) < 0.06 * width


def test_weighted_helpers_equal_statistics_of_the_repeated_sample():
    values = np.array([3.0, 1.0, 2.0, 2.0, 5.0, -1.0])
    weights = np.array([[1, 1, 1, 1, 1, 1], [2, 0, 1, 3, 0, 1], [0, 0, 0, 0, 4, 0], [1, 1, 0, 0, 0, 0]], dtype=float)
    for w in weights:
        rep = np.repeat(values, w.astype(int))
        assert weighted_median(values, w[None])[0] == np.median(rep)
        ranks = weighted_ranks(values, w[None])[0]
        np.testing.assert_allclose(np.repeat(ranks, w.astype(int)), st.rankdata(rep))
    other = np.array([0.5, 0.1, 0.9, 0.2, 2.0, 0.0])
    w = weights[1]
    rep_x, rep_y = np.repeat(values, w.astype(int)), np.repeat(other, w.astype(int))
    assert weighted_correlation(values, other, w[None])[0] == pytest.approx(np.corrcoef(rep_x, rep_y)[0, 1])
    assert weighted_correlation(values, other, w[None], "spearman")[0] == pytest.approx(st.spearmanr(rep_x, rep_y)[0])
    assert np.isnan(weighted_median(values, np.zeros((1, 6)))[0])


def test_resample_weights_are_two_level_draws():
    rng = np.random.default_rng(0)
    sizes = np.array([2, 3, 5])
    r = _draw(sizes, 4000, rng, True, True)
    assert r.weights.shape == (4000, 10) and r.cluster_counts.sum(axis=1).tolist() == [3] * 4000
    # within each cluster the draws total c_k * n_k, from that cluster's samples only
    np.testing.assert_array_equal(np.add.reduceat(r.weights, r.starts, axis=1), r.cluster_counts * sizes)
    np.testing.assert_allclose(r.weights.mean(axis=0), 1.0, atol=0.06)  # every sample once on average
    assert r.cluster_counts.var(axis=0) == pytest.approx(np.full(3, 2 / 3), abs=0.06)  # Multinomial(3, 1/3)
    whole = _draw(sizes, 50, rng, True, False)
    np.testing.assert_array_equal(whole.weights, np.repeat(whole.cluster_counts, sizes, axis=1))
    # weighted per-cluster means / medians of a tiny resample, by hand
    toy = Resample(np.array([[2.0, 0, 1, 1, 0]]), np.array([[1.0, 1.0]]), np.array([0, 2]))
    x = np.array([1.0, 5.0, 2.0, 4.0, 9.0])
    np.testing.assert_allclose(toy.cluster_mean(x), [[1.0, 3.0]])
    np.testing.assert_allclose(toy.cluster_median(x), [[1.0, 3.0]])
    assert toy.pooled_mean(x)[0] == pytest.approx((2 + 2 + 4) / 4)
    with_nan = np.array([1.0, 5.0, np.nan, 4.0, 9.0])
    np.testing.assert_allclose(toy.cluster_nanmeans(np.column_stack([x, with_nan])), [[[1.0, 1.0], [3.0, 4.0]]])


def _per_sample(seed=0, k=6, n=12):
    rng = np.random.default_rng(seed)
    frames = []
    for d in range(k):
        is_a = rng.random(n) < 0.5
        frames.append(pd.DataFrame({"dataset": f"d{d}", "sample_id": np.arange(n), "is_A": is_a,
                                    "is_Yes": rng.random(n) < 0.5,
                                    "slope": rng.normal(0.2 * d - 0.4, 1.0, n) + 1.0 * is_a}))
    return pd.concat(frames, ignore_index=True)


def test_steerability_cis_estimates_by_hand_and_intervals():
    per = _per_sample()
    out = steerability_cis(per, n_boot=500, seed=2)
    by = per.groupby("dataset")["slope"]
    ds = out[out.level == "dataset"].set_index(["dataset", "statistic"])
    for d in by.groups:
        assert ds.loc[(d, "mean_slope"), "estimate"] == pytest.approx(by.get_group(d).mean())
        assert ds.loc[(d, "median_slope"), "estimate"] == pytest.approx(by.get_group(d).median())
        assert ds.loc[(d, "anti_steerable_fraction"), "estimate"] == pytest.approx((by.get_group(d) < 0).mean())
        # within a dataset the samples are independent: Wilson's interval, as statsmodels computes it
        k, n = int((by.get_group(d) < 0).sum()), len(by.get_group(d))
        wilson = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert tuple(ds.loc[(d, "anti_steerable_fraction"), ["ci_low", "ci_high"]]) == pytest.approx(wilson, abs=1e-12)
        assert ds.loc[(d, "anti_steerable_fraction"), "method"] == "wilson"
    across = out[out.level == "across_datasets"].set_index("statistic")
    assert across.at["mean_slope", "estimate"] == pytest.approx(by.mean().mean())
    assert across.at["median_slope", "estimate"] == pytest.approx(by.median().median())
    assert across.at["anti_steerable_fraction", "estimate"] == pytest.approx((per.slope < 0).groupby(per.dataset).mean().mean())
    assert (out.ci_low <= out.estimate + 1e-12).all() and (out.estimate <= out.ci_high + 1e-12).all()
    assert across.at["mean_slope", "n_datasets"] == 6 and across.at["mean_slope", "n_samples"] == 72
    # the across-dataset interval of the mean is about 2 × its standard error over datasets
    se = by.mean().std(ddof=1) / np.sqrt(6)
    assert (across.at["mean_slope", "ci_high"] - across.at["mean_slope", "ci_low"]) == pytest.approx(2 * 1.96 * se, rel=0.35)
    again = steerability_cis(per, n_boot=500, seed=2)
    pd.testing.assert_frame_equal(out, again)
    bca = steerability_cis(per, n_boot=500, seed=2, method="bca", levels=("across_datasets",))
    assert bca["method"].eq("cluster-bca").all() and np.isfinite(bca[["ci_low", "ci_high"]].to_numpy()).all()


def test_spurious_cis_estimates_equal_the_ols_split():
    per = _per_sample(seed=4)
    per["is_Yes"] = per["is_Yes"].astype(object)
    per.loc[(per.dataset == "d1") & (per.sample_id < 3), "is_Yes"] = None  # is_Yes partly unknown: split by is_A only
    out = spurious_cis(per, n_boot=300)
    ref = spurious_factor_variance(per).set_index("dataset")
    ds = out[out.level == "dataset"].set_index(["dataset", "statistic"])
    for d in ref.index:
        for stat in ("var_total", "var_is_A", "var_is_Yes", "var_unexplained", "r2_is_A", "r2_is_A_is_Yes"):
            assert ds.loc[(d, stat), "estimate"] == pytest.approx(ref.at[d, stat], abs=1e-10, nan_ok=True)
    assert np.isnan(ds.loc[("d1", "var_is_Yes"), "estimate"]) and np.isfinite(ds.loc[("d1", "var_unexplained"), "estimate"])
    across = out[out.level == "across_datasets"].set_index("statistic")
    assert across.at["r2_is_A", "estimate"] == pytest.approx(ref["r2_is_A"].mean())
    # the same table as read back from a file: is_Yes as a nullable boolean column with missing values
    as_read = per.assign(is_Yes=per["is_Yes"].astype("boolean"))
    pd.testing.assert_frame_equal(spurious_cis(as_read, n_boot=300), out)


def test_correlation_counts_repeated_points_of_a_dataset_once():
    rng = np.random.default_rng(3)
    x = rng.normal(size=15)
    y = 0.5 * x + rng.normal(size=15)
    reps = 5
    xr, yr, ids = np.repeat(x, reps), np.repeat(y, reps), np.repeat(np.arange(15), reps)
    iid_unique = correlation_ci(x, y, n_boot=4000, seed=0)
    naive = correlation_ci(xr, yr, n_boot=4000, seed=0)  # pretends there are 75 independent points
    cluster = correlation_ci(xr, yr, clusters=ids, n_boot=4000, seed=0)
    assert cluster.estimate[0] == pytest.approx(np.corrcoef(x, y)[0, 1]) == naive.estimate[0]
    width = lambda r: r.ci_high[0] - r.ci_low[0]  # noqa: E731
    assert width(naive) < 0.6 * width(iid_unique)
    assert width(cluster) == pytest.approx(width(iid_unique), rel=0.1)
    means = correlation_ci(xr + rng.normal(0, 0.01, 75), yr, clusters=ids, of_cluster_means=True, method="spearman",
                           n_boot=200)
    assert means.estimate[0] == pytest.approx(st.spearmanr(x, y)[0], abs=0.05) and means.n_datasets == 15
    frame = cluster.to_frame(x="a")
    assert list(frame.columns[:2]) == ["x", "statistic"] and frame.at[0, "n_datasets"] == 15


def test_bad_options_raise_one_line():
    with pytest.raises(ConfigError, match="method"):
        _iid([1.0, 2.0, 3.0], method="bootstrap-t")
    with pytest.raises(ConfigError, match="n_boot"):
        _iid([1.0, 2.0, 3.0], n_boot=1)
    with pytest.raises(ConfigError, match="lengths"):
        bootstrap({"a": [1.0, 2.0], "b": [1.0]}, lambda r, d: r.pooled_mean(d["a"]))
    with pytest.raises(ConfigError, match="slope"):
        steerability_cis(pd.DataFrame({"dataset": ["d"], "x": [1.0]}))
