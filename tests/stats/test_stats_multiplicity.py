"""interp_steer.stats: Holm / BH against statsmodels, within-group AUC against sklearn and a known answer."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from statsmodels.stats.multitest import multipletests

from interp_steer.errors import ConfigError
from interp_steer.stats import auc, benjamini_hochberg, holm, within_group_auc, within_group_auc_test
from interp_steer.stats.proportions import clustered_proportion


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_holm_and_bh_match_statsmodels(seed):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 0.01, 4), rng.uniform(0, 1, 10), [0.03, 0.03]])  # ties included
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1], rtol=0, atol=1e-12)


def test_holm_hand_example():
    # sorted 0.01, 0.02, 0.04 → 3·0.01, max(0.03, 2·0.02), max(0.04, 1·0.04)
    np.testing.assert_allclose(holm([0.04, 0.01, 0.02]), [0.04, 0.03, 0.04])


def test_multiplicity_rejects_bad_p():
    with pytest.raises(ConfigError, match="p-values"):
        holm([0.1, 1.5])


def test_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    s, y = rng.integers(0, 5, 200).astype(float), rng.random(200) < 0.4
    assert auc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_within_group_auc_is_mean_of_sklearn_per_group():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(6), 40)
    y = rng.random(240) < 0.3
    s = rng.normal(size=240) + 0.8 * y + 3 * g  # group offsets: pooled AUC differs, within-group does not care
    expected = np.mean([roc_auc_score(y[g == k], s[g == k]) for k in range(6)])
    assert within_group_auc(s, y, g) == pytest.approx(expected, abs=1e-12)


def test_within_group_auc_known_answer_and_null():
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(60), 50)
    y = rng.random(g.size) < 0.3
    # normal shift d → AUC = Φ(d/√2); d = 1 → 0.760
    signal = within_group_auc_test(rng.normal(size=g.size) + y, y, g, n_boot=500, n_perm=500)
    assert signal.low < 0.7602 < signal.high and signal.p_value < 0.01
    # base rates differ by group and scores carry only the base rate: within-group AUC is exactly ½
    base = np.array([y[g == k].mean() for k in g])
    assert within_group_auc(base, y, g) == pytest.approx(0.5)
    null = within_group_auc_test(rng.normal(size=g.size), y, g, n_boot=500, n_perm=500)
    assert null.low < 0.5 < null.high and null.p_value > 0.01


def test_within_group_auc_needs_both_classes():
    with pytest.raises(ConfigError, match="both classes"):
        within_group_auc([1.0, 2.0], [True, True], [0, 0])


def test_clustered_proportion_pooled_share():
    hits = np.array([1, 0, 1, 1, 0, 0], bool)
    eligible = np.array([1, 1, 1, 1, 1, 0], bool)
    share, low, high = clustered_proportion(hits, eligible, np.array([0, 0, 1, 1, 2, 2]), n_boot=200)
    assert share == pytest.approx(3 / 5) and 0 <= low <= share <= high <= 1
