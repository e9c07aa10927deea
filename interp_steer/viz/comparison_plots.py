"""Plots of a steering-vector comparison (tables of :mod:`interp_steer.analysis.sae_comparison`): DataFrame → Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from interp_steer.viz.plots import PROPENSITY_UNITS, SLOPE_UNITS, _need  # noqa: E402


def plot_cosine_heatmap(cosine: pd.DataFrame, title: str | None = None) -> Figure:
    """Heat map of the pairwise cosine table (columns vector_a, vector_b, cosine)."""
    _need(cosine, ["vector_a", "vector_b", "cosine"], "plot_cosine_heatmap")
    order = list(dict.fromkeys(cosine["vector_a"]))
    mat = cosine.pivot(index="vector_a", columns="vector_b", values="cosine").loc[order, order]
    fig, ax = plt.subplots(figsize=(1.2 * len(order) + 2.5, 1.0 * len(order) + 1.5))
    image = ax.imshow(mat.to_numpy(), vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(order)), order, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(order)), order, fontsize=8)
    for i in range(len(order)):
        for j in range(len(order)):
            ax.text(j, i, f"{mat.iat[i, j]:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, label="cosine similarity")
    ax.set_title(title or "Cosine similarity of the steering vectors")
    return fig


def plot_feature_effects(effects: pd.DataFrame, title: str | None = None) -> Figure:
    """Target-feature increase vs off-target L2 change, one line per vector through its multipliers."""
    _need(effects, ["vector", "multiplier", "target_increase", "off_target_l2"], "plot_feature_effects")
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (name, group) in enumerate(effects.groupby("vector", sort=False)):
        group = group.sort_values("multiplier")
        ax.plot(group["off_target_l2"], group["target_increase"], marker="o", color=f"C{i % 10}", label=name)
        for row in group.itertuples():
            ax.annotate(f"×{row.multiplier:g}", (row.off_target_l2, row.target_increase), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("off-target change: L2 of Δ over non-target features")
    ax.set_ylabel("target-feature increase (mean Δ activation)")
    ax.set_title(title or "SAE feature effects at equal norm")
    ax.legend(fontsize=7, loc="best")
    return fig


def plot_mean_propensity_by_vector(propensities: pd.DataFrame, title: str | None = None) -> Figure:
    """Mean ± standard error of propensity vs multiplier, one line per vector."""
    _need(propensities, ["vector", "multiplier", "propensity"], "plot_mean_propensity_by_vector")
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (name, group) in enumerate(propensities.groupby("vector", sort=False)):
        stats = group.groupby("multiplier")["propensity"].agg(["mean", "std", "count"])
        sem = (stats["std"] / np.sqrt(stats["count"])).fillna(0.0)
        ax.errorbar(stats.index, stats["mean"], yerr=sem, marker="o", capsize=3, color=f"C{i % 10}", label=name)
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("multiplier (× common norm)")
    ax.set_ylabel(PROPENSITY_UNITS)
    ax.set_title(title or "Propensity vs multiplier (mean ± s.e.)")
    ax.legend(fontsize=7, loc="best")
    return fig


def plot_slopes_by_vector(per_sample: pd.DataFrame, title: str | None = None) -> Figure:
    """Box plot of per-sample steerability (slope) for each vector, in table order."""
    _need(per_sample, ["vector", "slope"], "plot_slopes_by_vector")
    order = list(dict.fromkeys(per_sample["vector"]))
    data = [per_sample.loc[per_sample["vector"] == v, "slope"].dropna().to_numpy() for v in order]
    fig, ax = plt.subplots(figsize=(6.5, max(2.5, 0.45 * len(order) + 1.2)))
    ax.boxplot(data, orientation="horizontal", widths=0.6)
    ax.set_yticks(range(1, len(order) + 1), order, fontsize=8)
    ax.axvline(0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel(SLOPE_UNITS)
    ax.set_title(title or "Per-sample steerability by vector")
    return fig
