"""The study's figures (viz/study_plots.py) and the unit fix of viz/plots.py: A/B rows (logits) and free-text rows
(nats) never share an axis, every axis names its unit, at most 40 labelled rows per panel."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from interp_steer.errors import ConfigError
from interp_steer.evaluation import steerability, steerability_cis
from interp_steer.viz.plots import plot_propensity_curves, plot_steerability_distribution
from interp_steer.viz.study_plots import (
    plot_id_vs_ood_by_variant,
    plot_propensity_curves_ci,
    plot_steerability_violins,
)


def propensities(kinds=("ab", "free_text"), n_datasets: int = 3, n: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for kind in kinds:
        for d in range(n_datasets):
            for s in range(n):
                slope = rng.normal(0.5 if kind == "ab" else 4.0, 1.0)
                for m in (-1.0, 0.0, 1.0):
                    rows.append({"dataset": f"{kind}-{d}", "variant": "BASE", "layer": 3, "hook_name": "h",
                                 "vector": "v", "sample_id": str(s), "multiplier": m, "kind": kind,
                                 "propensity": slope * m + rng.normal(0, 0.1)})
    return pd.DataFrame(rows)


def test_mixed_framings_get_one_panel_per_unit():
    props = propensities()
    for fig in (plot_propensity_curves(props), plot_steerability_distribution(steerability(props))):
        labels = [ax.get_ylabel() if "propensity" in ax.get_ylabel() else ax.get_xlabel() for ax in fig.axes]
        assert len(fig.axes) == 2 and "logits" in labels[0] and "nats" in labels[1]
        plt.close(fig)
    single = plot_propensity_curves(props[props["kind"] == "free_text"])
    assert len(single.axes) == 1 and "nats" in single.axes[0].get_ylabel()
    plt.close(single)


def test_violins_show_the_anti_steerable_share_with_its_interval():
    per_sample = steerability(propensities(kinds=("free_text",)))
    cis = steerability_cis(per_sample, levels=("dataset",), n_boot=200)
    fig = plot_steerability_violins(per_sample, cis, units="nats per unit multiplier")
    left, right = fig.axes[:2]
    assert "nats per unit multiplier" in left.get_xlabel() and "%" in right.get_xlabel()
    anti = cis[cis["statistic"] == "anti_steerable_fraction"].set_index("dataset")["estimate"]
    order = per_sample.groupby("dataset")["slope"].median().sort_values().index
    widths = [bar.get_width() for bar in right.patches]
    np.testing.assert_allclose(widths, anti.reindex(order).to_numpy() * 100)
    assert any(line.get_xdata()[0] == 50 for line in right.get_lines())  # the 50% reference line
    plt.close(fig)
    with pytest.raises(ConfigError, match="max_rows"):
        plot_steerability_violins(per_sample, cis, units="nats", max_rows=2)


def test_propensity_curves_band_is_the_bootstrap_interval_of_the_mean():
    props = propensities(kinds=("ab",), n_datasets=1)
    fig = plot_propensity_curves_ci(props, units="logits", n_boot=4000)
    line = fig.axes[0].get_lines()[0]
    expected = props.groupby("multiplier")["propensity"].mean().sort_index().to_numpy()
    np.testing.assert_allclose(line.get_ydata(), expected)
    # the band: percentile bootstrap of the mean over samples, vs an independent integer-draw bootstrap
    vertices = fig.axes[0].collections[0].get_paths()[0].vertices
    rng = np.random.default_rng(1)
    for m, group in props.groupby("multiplier"):
        y = group["propensity"].to_numpy(dtype=float)
        low, high = np.percentile(y[rng.integers(0, len(y), size=(20000, len(y)))].mean(1), [2.5, 97.5])
        at = vertices[np.isclose(vertices[:, 0], m), 1]
        assert abs(at.min() - low) < 0.1 * (high - low) and abs(at.max() - high) < 0.1 * (high - low)
    assert "logits" in fig.axes[0].get_ylabel()
    plt.close(fig)


def test_id_vs_ood_points_coloured_by_variant():
    rows = []
    for d in ("a", "b"):
        for variant, slope in (("BASE", 2.0), ("SYS_POS", 1.0), ("USER_NEG", 0.5)):
            rows.append({"dataset": d, "train_variant": "BASE", "variant": variant, "slope": slope,
                         "slope_ci_low": slope - 0.1, "slope_ci_high": slope + 0.1, "n_samples": 5})
    fig = plot_id_vs_ood_by_variant(pd.DataFrame(rows), units="nats per unit multiplier")
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert "BASE vector on SYS_POS" in labels and "BASE vector on USER_NEG" in labels and "y = x (OOD = ID)" in labels
    assert "nats" in ax.get_xlabel() and "nats" in ax.get_ylabel() and "4 (dataset, variant) points" in ax.get_title()
    plt.close(fig)
