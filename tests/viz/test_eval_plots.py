"""Smoke tests: every reliability plot renders a non-empty PNG; bad input raises ConfigError."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interp_steer.errors import ConfigError
from interp_steer.evaluation import spurious_factor_variance, steerability, summarize_steerability
from interp_steer.viz.plots import (
    plot_anti_steerable_fraction,
    plot_id_vs_ood,
    plot_layer_scan,
    plot_propensity_curves,
    plot_spurious_variance,
    plot_steerability_distribution,
    save_figure,
)


@pytest.fixture(scope="module")
def tables():
    rng = np.random.default_rng(0)
    rows = []
    for d in ("persona:a", "persona:b"):
        for layer in (3, 6, 9):
            for s in range(12):
                slope, is_a = rng.normal(0.4, 1), bool(s % 2)
                for m in (-1.0, 0.0, 1.0):
                    rows.append(dict(dataset=d, variant="BASE", layer=layer, hook_name=f"blocks.{layer}.hook_resid_post",
                                     vector="v", sample_id=f"{s}", multiplier=m, propensity=slope * m + rng.normal(0, .2),
                                     kind="ab", is_A=is_a, is_Yes=bool(s % 3)))
    props = pd.DataFrame(rows)
    per = steerability(props)
    return props, per, summarize_steerability(per)


def test_every_plot_writes_a_png(tmp_path, tables):
    props, per, summary = tables
    layer6 = per[per.layer == 6]
    ood = summary.pivot_table(index="dataset", columns="layer", values="mean_slope").reset_index()
    ood = ood.rename(columns={3: "id_steerability", 9: "ood_steerability"})
    figures = {
        "curves": plot_propensity_curves(props[props.layer == 6]),
        "distribution": plot_steerability_distribution(layer6),
        "anti": plot_anti_steerable_fraction(summary[summary.layer == 6]),
        "scan": plot_layer_scan(summary),
        "id_ood": plot_id_vs_ood(ood),
        "spurious": plot_spurious_variance(spurious_factor_variance(layer6)),
    }
    for name, fig in figures.items():
        assert fig.axes[0].get_title() and fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel()
        path = save_figure(fig, tmp_path / f"{name}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_plots_reject_bad_tables(tables):
    props, per, summary = tables
    with pytest.raises(ConfigError):
        plot_layer_scan(summary.drop(columns="layer"))
    with pytest.raises(ConfigError):
        plot_propensity_curves(props.iloc[:0])


def test_comparison_plots_never_put_logits_and_nats_on_one_axis():
    """A table with A/B and free-text rows gets one panel per kind, each axis labelled with its own unit."""
    from interp_steer.viz.comparison_plots import plot_mean_propensity_by_vector, plot_slopes_by_vector

    rng = np.random.default_rng(0)
    rows = [{"vector": v, "kind": kind, "sample_id": f"{kind}{i}", "multiplier": m, "propensity": rng.normal()}
            for v in ("caa", "sae_ts") for kind in ("ab", "free_text") for i in range(4) for m in (-1.0, 0.0, 1.0)]
    propensities = pd.DataFrame(rows)
    fig = plot_mean_propensity_by_vector(propensities)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert len(labels) == 2 and "logits" in labels[0] and "nats" in labels[1]
    per_sample = propensities.groupby(["vector", "kind", "sample_id"], as_index=False)["propensity"].mean().rename(
        columns={"propensity": "slope"})
    fig = plot_slopes_by_vector(per_sample)
    labels = [ax.get_xlabel() for ax in fig.axes]
    assert len(labels) == 2 and "logits" in labels[0] and "nats" in labels[1]
    single = plot_slopes_by_vector(per_sample[per_sample["kind"] == "free_text"])
    assert len(single.axes) == 1 and "nats" in single.axes[0].get_xlabel()
