"""Figures with uncertainty: titles with n, units on axes, legends, ≤ 40 labelled rows per panel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interp_steer.errors import ConfigError
from interp_steer.evaluation.spurious import spurious_factor_variance
from interp_steer.evaluation.study_intervals import steerability_cis
from interp_steer.viz.uncertainty_plots import (
    plot_intervals,
    plot_layer_profile,
    plot_relative_vs_propensity_difference,
    plot_spurious_variance_split,
)


def _per_sample(k, n=10, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"dataset": np.repeat([f"dataset-{i:02d}" for i in range(k)], n),
                         "is_A": rng.random(k * n) < 0.5, "is_Yes": rng.random(k * n) < 0.5,
                         "slope": rng.normal(size=k * n)})


def test_spurious_bars_stack_the_three_parts_and_split_panels():
    spurious = spurious_factor_variance(_per_sample(90))
    fig = plot_spurious_variance_split(spurious)
    axes = fig.axes
    assert len(axes) == 3 and all(len(ax.get_yticklabels()) <= 40 for ax in axes)
    assert sum(len(ax.get_yticklabels()) for ax in axes) == 90
    assert "90 datasets, 900 samples" in fig._suptitle.get_text()
    assert "logit diff. per unit multiplier" in axes[0].get_xlabel()
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert labels == ["is_A (answer letter)", "+ is_Yes (answer means Yes)", "unexplained"]
    # stacked: the right end of each row's last bar is the total variance
    one = spurious_factor_variance(_per_sample(3))
    ax = plot_spurious_variance_split(one, units="nats per unit multiplier").axes[0]
    ends = sorted(p.get_x() + p.get_width() for p in ax.patches[-3:])
    np.testing.assert_allclose(ends, sorted(one["var_total"]), rtol=1e-9)
    assert "nats" in ax.get_xlabel()
    with pytest.raises(ConfigError, match="var_is_A"):
        plot_spurious_variance_split(spurious.drop(columns="var_is_A"))


def test_interval_plot_and_generalisation_scatter():
    cis = steerability_cis(_per_sample(5), n_boot=100, levels=("dataset",))
    fig = plot_intervals(cis, statistic="anti_steerable_fraction", units="share of samples", reference=0.5,
                         reference_label="50% anti-steerable")
    ax = fig.axes[0]
    assert "5 datasets, 50 samples" in fig._suptitle.get_text() and "share of samples" in ax.get_xlabel()
    assert "50% anti-steerable" in [t.get_text() for t in ax.get_legend().get_texts()]
    with pytest.raises(ConfigError, match="statistic"):
        plot_intervals(cis, statistic="nope")
    per = pd.DataFrame({"dataset": ["a", "a", "b", "b", "a"], "train_variant": ["BASE", "SYS_POS", "BASE", "USER_NEG", "BASE"],
                        "variant": ["SYS_POS", "BASE", "USER_NEG", "BASE", "BASE"],
                        "relative": [0.5, 0.9, np.nan, 1.1, 1.0], "abs_propensity_difference": [1.0, 1.0, 2.0, 0.5, 0.0]})
    corr = pd.DataFrame({"statistic": ["pearson_r"], "estimate": [0.8], "ci_low": [0.1], "ci_high": [0.95]})
    fig = plot_relative_vs_propensity_difference(per, correlation=corr)
    ax = fig.axes[0]
    assert "3 (dataset, train ≠ test) points, 2 datasets" in ax.get_title() and "pearson_r = 0.80 [0.10, 0.95]" in ax.get_title()
    assert "logit diff." in ax.get_xlabel() and "ratio" in ax.get_ylabel()
    assert {"test variant BASE", "test variant SYS_POS"} <= {t.get_text() for t in ax.get_legend().get_texts()}


def test_layer_profile_has_bands_units_and_reference():
    per = pd.concat([_per_sample(4, seed=s).assign(layer=layer) for s, layer in enumerate((3, 6, 9))])
    cis = steerability_cis(per, by=("layer",), levels=("across_datasets",), n_boot=100)
    fig = plot_layer_profile(cis, statistic="anti_steerable_fraction", chosen=6)
    ax = fig.axes[0]
    assert "4 datasets, 40 samples per layer" in ax.get_title() and "share of samples" in ax.get_ylabel()
    labels = {t.get_text() for t in ax.get_legend().get_texts()}
    assert {"50% anti-steerable", "chosen layer 6", "95% CI (two-level bootstrap)"} <= labels
    line = ax.get_lines()[0]
    rows = cis[cis.statistic == "anti_steerable_fraction"].sort_values("layer")
    np.testing.assert_allclose(line.get_ydata(), rows.estimate)
    assert "logit diff." in plot_layer_profile(cis).axes[0].get_ylabel()
