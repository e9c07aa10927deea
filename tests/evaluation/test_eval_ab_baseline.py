"""The unsteered A/B baseline (matching-letter rate, letter preference) against a hand count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interp_steer.errors import ConfigError
from interp_steer.evaluation.ab_baseline import ab_baseline
from interp_steer.stats.intervals import proportion_interval


def _table():
    # d1: unsteered propensities (logit matching − logit other) and whether matching is (A)
    spec = {"d1": ([2.0, -1.0, 0.5, -0.2, 0.0, 3.0], [True, True, False, False, True, False]),
            "d2": ([1.0, 1.0, -2.0, -3.0], [True, False, True, False])}
    rows = []
    for d, (props, is_a) in spec.items():
        for i, (p, a) in enumerate(zip(props, is_a)):
            for vector in ("caa", "random:0"):  # duplicated unsteered rows must count once
                for m in (-1.0, 0.0, 1.0):
                    rows.append({"dataset": d, "sample_id": f"s{i}", "vector": vector, "multiplier": m, "kind": "ab",
                                 "propensity": p + 5 * m, "is_A": a, "variant": "BASE"})
    rows.append({"dataset": "d1", "sample_id": "f0", "vector": "caa", "multiplier": 0.0, "kind": "free_text",
                 "propensity": 9.0, "is_A": np.nan, "variant": "BASE"})
    return pd.DataFrame(rows)


def test_rates_against_hand_count():
    out = ab_baseline(_table(), n_boot=300).set_index(["dataset", "level", "statistic"])
    # d1: matching where p > 0: s0, s2, s5 (+ tie s4 counts 1/2) → 3.5 / 6
    #     picks (A): s0 (A, matching), s1? no (A but other letter) , s2? matching is B → no, s3 (B matching, picks other = A),
    #     s4 tie → 1/2, s5 matching is B → no: 2.5 / 6
    assert out.loc[("d1", "dataset", "matching_rate"), "estimate"] == pytest.approx(3.5 / 6)
    assert out.loc[("d1", "dataset", "a_rate"), "estimate"] == pytest.approx(2.5 / 6)
    # d2: matching s0, s1 → 2/4; picks A: s0 (A matching), s3 (B matching, p < 0 → A) → 2/4
    assert out.loc[("d2", "dataset", "matching_rate"), "estimate"] == pytest.approx(0.5)
    assert out.loc[("d2", "dataset", "a_rate"), "estimate"] == pytest.approx(0.5)
    a_minus_b = np.array([2.0, -1.0, -0.5, 0.2, 0.0, -3.0])
    assert out.loc[("d1", "dataset", "mean_a_minus_b"), "estimate"] == pytest.approx(a_minus_b.mean())
    assert out.loc[("d1", "dataset", "a_rate"), "n_samples"] == 6
    _, low, high = proportion_interval(3.5, 6)
    assert out.loc[("d1", "dataset", "matching_rate"), "ci_low"] == pytest.approx(low)
    across = out.xs("across_datasets", level="level")
    assert across.loc[(None, "a_rate"), "estimate"] == pytest.approx((2.5 / 6 + 0.5) / 2)
    assert across.loc[(None, "a_rate"), "n_datasets"] == 2


def test_wilson_interval_by_hand_and_errors():
    # p = 0.5, n = 10, z = 1.959964: centre 0.5, half-width z/(1+z²/n)·sqrt(p(1-p)/n + z²/(4n²))
    z = 1.959963984540054
    half = z / (1 + z * z / 10) * np.sqrt(0.025 + z * z / 400)
    assert proportion_interval(5, 10) == pytest.approx((0.5, 0.5 - half, 0.5 + half))
    _, low, high = proportion_interval(50, 50)  # all (A): the interval stays below 1 on the low side
    assert high == 1.0 and 0.9 < low < 0.95
    with pytest.raises(ConfigError, match="multiplier 0"):
        ab_baseline(_table().query("multiplier != 0"))
    with pytest.raises(ConfigError, match="is_A"):
        ab_baseline(_table().drop(columns="is_A"))
