"""The bootstrap engine against independent numpy loops: i.i.d. and two-level draws, NaN policy, small n."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st

from interp_steer.errors import ConfigError
from interp_steer.stats.bootstrap import MIN_FINITE_SHARE, bootstrap, bootstrap_metric

CHUNK = 250  # the engine's default batch size: the random stream is consumed batch by batch


def _mean(r, d):
    return r.pooled_mean(d["x"])


def _hand_iid_means(x: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Resampled means drawn as the engine documents it: per batch, one uniform per draw, row-major."""
    rng = np.random.default_rng(seed)
    out = []
    for lo in range(0, n_boot, CHUNK):
        b = min(CHUNK, n_boot - lo)
        index = np.floor(rng.random(b * len(x)) * len(x)).astype(int).reshape(b, len(x))
        out.append(x[index].mean(axis=1))
    return np.concatenate(out)


def test_iid_percentile_equals_an_independent_loop_on_the_same_stream():
    x = np.random.default_rng(1).gamma(2.0, size=37)
    res = bootstrap({"x": x}, _mean, n_boot=1100, seed=7)
    means = _hand_iid_means(x, 1100, 7)
    np.testing.assert_allclose(res.distribution[:, 0], means, rtol=1e-12)
    np.testing.assert_allclose([res.ci_low[0], res.ci_high[0]], np.percentile(means, [2.5, 97.5]), rtol=1e-12)
    assert res.estimate[0] == pytest.approx(x.mean()) and res.method == "iid-percentile"


def test_iid_interval_matches_the_textbook_bootstrap_in_distribution():
    # a different random stream (integers, scipy): only the distribution of the interval must agree
    x = np.random.default_rng(2).exponential(size=50)
    ours = bootstrap({"x": x}, _mean, n_boot=20000, seed=0)
    theirs = st.bootstrap((x,), np.mean, method="percentile", n_resamples=20000, random_state=3).confidence_interval
    width = theirs.high - theirs.low
    assert abs(ours.ci_low[0] - theirs.low) < 0.05 * width and abs(ours.ci_high[0] - theirs.high) < 0.05 * width


def _hand_two_level(y: np.ndarray, sizes: np.ndarray, n_boot: int, seed: int, within: bool) -> np.ndarray:
    """Mean over drawn clusters of each drawn cluster's (resampled) mean, looping slot by slot."""
    rng = np.random.default_rng(seed)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    k, out = len(sizes), []
    for lo in range(0, n_boot, CHUNK):
        b = min(CHUNK, n_boot - lo)
        chosen = rng.integers(0, k, size=(b, k))
        u = rng.random(int(sizes[chosen].sum())) if within else np.empty(0)
        used = 0
        for row in chosen:
            slot_means = []
            for c in row:
                rows = y[starts[c]:starts[c] + sizes[c]]
                if within:
                    pick = np.floor(u[used:used + sizes[c]] * sizes[c]).astype(int)
                    used += sizes[c]
                    rows = rows[pick]
                slot_means.append(rows.mean())
            out.append(np.mean(slot_means))
    return np.array(out)


@pytest.mark.parametrize("within", [True, False])
def test_clustered_resampling_equals_a_hand_implementation(within):
    rng = np.random.default_rng(4)
    sizes = np.array([3, 7, 5, 4, 6])
    labels = np.repeat(np.array(["a", "b", "c", "d", "e"]), sizes)
    y = rng.normal(size=sizes.sum()) + np.repeat(rng.normal(size=5), sizes)
    res = bootstrap({"y": y}, lambda r, d: r.across_clusters(r.cluster_mean(d["y"])), clusters=labels, n_boot=600,
                    seed=11, resample_within=within)
    hand = _hand_two_level(y, sizes, 600, 11, within)
    np.testing.assert_allclose(res.distribution[:, 0], hand, rtol=1e-10)
    assert res.estimate[0] == pytest.approx(np.mean([y[labels == g].mean() for g in "abcde"]))
    assert res.n_datasets == 5 and res.method == "cluster-percentile"


def test_labels_in_any_order_give_the_same_interval_as_sorted_rows():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, size=40)
    y = rng.normal(size=40)
    order = np.argsort(labels, kind="stable")
    stat = lambda r, d: r.across_clusters(r.cluster_mean(d["y"]))  # noqa: E731
    shuffled = bootstrap({"y": y}, stat, clusters=labels, n_boot=300, seed=1)
    ordered = bootstrap({"y": y[order]}, stat, clusters=labels[order], n_boot=300, seed=1)
    np.testing.assert_allclose(shuffled.distribution, ordered.distribution)


def test_undefined_resamples_are_dropped_and_too_many_give_nan():
    x = np.arange(20.0)

    def some_nan(r, d):  # NaN for the resamples whose mean is below the cut
        m = r.pooled_mean(d["x"])
        return np.where(m < cut, np.nan, m)

    cut = -np.inf
    full = bootstrap({"x": x}, some_nan, n_boot=1000, seed=2).distribution[:, 0]
    cut = np.quantile(full, 0.3)  # ~30% undefined: interval from the finite ones
    res = bootstrap({"x": x}, some_nan, n_boot=1000, seed=2)
    kept = full[full >= cut]
    np.testing.assert_allclose([res.ci_low[0], res.ci_high[0]], np.percentile(kept, [2.5, 97.5]))
    cut = np.quantile(full, 1 - MIN_FINITE_SHARE + 0.05)  # more than half undefined: no interval
    res = bootstrap({"x": x}, some_nan, n_boot=1000, seed=2)
    assert np.isnan(res.ci_low[0]) and np.isnan(res.ci_high[0])


def test_small_n_and_bad_options():
    one = bootstrap({"x": [3.0]}, _mean, n_boot=100)
    assert one.estimate[0] == 3.0 and np.isnan(one.ci_low[0]) and np.isnan(one.ci_high[0]) and one.n_boot == 0
    with pytest.raises(ConfigError, match="no rows"):
        bootstrap({"x": np.array([])}, _mean)
    with pytest.raises(ConfigError, match="n_boot"):
        bootstrap({"x": [1.0, 2.0]}, _mean, n_boot=1)
    with pytest.raises(ConfigError, match="confidence"):
        bootstrap({"x": [1.0, 2.0]}, _mean, confidence=1.5)
    with pytest.raises(ConfigError, match="cluster labels"):
        bootstrap({"x": [1.0, 2.0]}, _mean, clusters=["a"])


def test_metric_of_indices_is_the_weighted_statistic_and_keeps_strata():
    x = np.random.default_rng(6).normal(size=30)
    by_index = bootstrap_metric(lambda i: float(x[i].mean()), 30, n_boot=400, seed=9)
    by_weight = bootstrap({"x": x}, _mean, n_boot=400, seed=9)
    np.testing.assert_allclose(by_index.distribution, by_weight.distribution, rtol=1e-12)
    strata = np.repeat([0, 1, 2], [5, 10, 15])
    counts = bootstrap_metric(lambda i: float((strata[i] == 1).sum()), 30, clusters=strata, resample_clusters=False,
                              n_boot=200, seed=0)
    assert np.all(counts.distribution == 10)  # every stratum keeps its size
