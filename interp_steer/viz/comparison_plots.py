"""Plots of a steering-vector comparison (tables of :mod:`interp_steer.analysis.sae_comparison`): DataFrame → Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from interp_steer.viz.plots import (  # noqa: E402
    KIND_PROPENSITY_UNITS,
    KIND_SLOPE_UNITS,
    PROPENSITY_UNITS,
    SLOPE_UNITS,
    _by_kind,
    _kind_axes,
    _need,
)


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
    """Mean ± standard error of propensity vs multiplier, one line per vector; A/B (logits) and free-text (nats)
    rows of a table with a ``kind`` column go to separate panels, each labelled with its unit."""
    _need(propensities, ["vector", "multiplier", "propensity"], "plot_mean_propensity_by_vector")
    parts = _by_kind(propensities)
    fig, axes = _kind_axes(parts, 6.5, 4.2)
    for ax, (kind, frame) in zip(axes, parts):
        for i, (name, group) in enumerate(frame.groupby("vector", sort=False)):
            stats = group.groupby("multiplier")["propensity"].agg(["mean", "std", "count"])
            sem = (stats["std"] / np.sqrt(stats["count"])).fillna(0.0)
            ax.errorbar(stats.index, stats["mean"], yerr=sem, marker="o", capsize=3, color=f"C{i % 10}", label=name)
        ax.axhline(0, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("multiplier (× common norm)")
        ax.set_ylabel(KIND_PROPENSITY_UNITS.get(kind, PROPENSITY_UNITS) if kind else PROPENSITY_UNITS)
        suffix = f" — {kind}" if len(parts) > 1 else ""
        ax.set_title((title or "Propensity vs multiplier (mean ± s.e.)") + suffix)
        ax.legend(fontsize=7, loc="best")
    return fig


def plot_slopes_by_vector(per_sample: pd.DataFrame, title: str | None = None) -> Figure:
    """Box plot of per-sample steerability (slope) for each vector, in table order; A/B (logits per unit) and
    free-text (nats per unit) rows of a table with a ``kind`` column go to separate panels."""
    _need(per_sample, ["vector", "slope"], "plot_slopes_by_vector")
    parts = _by_kind(per_sample)
    n_rows = max(len(dict.fromkeys(frame["vector"])) for _, frame in parts)
    fig, axes = _kind_axes(parts, 6.5, max(2.5, 0.45 * n_rows + 1.2))
    for ax, (kind, frame) in zip(axes, parts):
        order = list(dict.fromkeys(frame["vector"]))
        data = [frame.loc[frame["vector"] == v, "slope"].dropna().to_numpy() for v in order]
        ax.boxplot(data, orientation="horizontal", widths=0.6)
        ax.set_yticks(range(1, len(order) + 1), order, fontsize=8)
        ax.axvline(0, color="grey", lw=0.8, ls=":")
        ax.set_xlabel(KIND_SLOPE_UNITS.get(kind, SLOPE_UNITS) if kind else SLOPE_UNITS)
        suffix = f" — {kind}" if len(parts) > 1 else ""
        ax.set_title((title or "Per-sample steerability by vector") + suffix)
    return fig
