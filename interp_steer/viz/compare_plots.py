"""Figures of the cross-model study (:mod:`interp_steer.runs.study_compare`): per-dataset scatter of two models with
both 95% CIs, and the layer profiles of several models on one relative-depth axis."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from interp_steer.errors import ConfigError


def column(measure: str, variant: str, label: str, part: str = "estimate") -> str:
    """The cross-model joined table's column name of one value (``measure|variant|label|part``)."""
    return f"{measure}|{variant}|{label}|{part}"


def plot_model_scatter(joined: pd.DataFrame, a: str, b: str, *, framing: str, variant: str, units: dict[str, str],
                       correlations: pd.DataFrame | None = None, title: str | None = None) -> Figure:
    """Two panels (mean slope, anti-steerable fraction): one point per dataset of ``framing``, model ``a`` on x and
    ``b`` on y, each with its per-dataset 95% CI, coloured by source; the Spearman correlation with its CI in the
    panel title; y = x dashed."""
    part = joined[joined["framing"] == framing]
    if part.empty:
        raise ConfigError(f"plot_model_scatter: no {framing} datasets")
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 5.0))
    for ax, measure in zip(axes, ("mean_slope", "anti_steerable_fraction")):
        x, y = column(measure, variant, a), column(measure, variant, b)
        if x not in part or y not in part:
            ax.axis("off")
            continue
        for i, (source, group) in enumerate(part.groupby("source", sort=True)):
            gx, gy = group[x].to_numpy(float), group[y].to_numpy(float)
            xerr = np.vstack([gx - group[column(measure, variant, a, "ci_low")],
                              group[column(measure, variant, a, "ci_high")] - gx]).clip(min=0)
            yerr = np.vstack([gy - group[column(measure, variant, b, "ci_low")],
                              group[column(measure, variant, b, "ci_high")] - gy]).clip(min=0)
            ax.errorbar(gx, gy, xerr=xerr, yerr=yerr, fmt="o", ms=3, elinewidth=0.5, alpha=0.7, color=f"C{i}",
                        label=f"{source} ({len(group)} datasets)")
        values = np.concatenate([part[x].to_numpy(float), part[y].to_numpy(float)])
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        ax.plot([lo, hi], [lo, hi], color="grey", ls="--", lw=0.8, label="y = x")
        ax.set_xlabel(f"{a}: {measure} ({units[measure]})", fontsize=8)
        ax.set_ylabel(f"{b}: {measure} ({units[measure]})", fontsize=8)
        head = measure
        if correlations is not None and not correlations.empty:
            row = correlations[(correlations["framing"] == framing) & (correlations["source"] == "all")
                               & (correlations["measure"] == measure) & (correlations["variant"] == variant)
                               & (correlations["statistic"] == "spearman_r") & (correlations["model_b"] == b)]
            if not row.empty:
                r = row.iloc[0]
                head += f": Spearman {r['estimate']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        ax.set_title(head, fontsize=9)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(title or f"Per-dataset steerability, {a} vs {b}, {framing} ({variant}); bars: 95% CIs", fontsize=10)
    fig.tight_layout()
    return fig


def plot_depth_profiles(profiles: pd.DataFrame, *, framing: str, units: str, statistic: str = "mean_slope",
                        title: str | None = None) -> Figure:
    """Across-dataset ``statistic`` per layer of each model against relative depth (layer / n_layers), with 95%
    bands and each model's chosen layer dotted."""
    rows = profiles[(profiles["framing"] == framing) & (profiles["statistic"] == statistic)]
    if rows.empty:
        raise ConfigError(f"plot_depth_profiles: no {framing} {statistic} rows")
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    for i, (model, group) in enumerate(rows.groupby("model", sort=False)):
        group = group.sort_values("relative_depth")
        ax.plot(group["relative_depth"], group["estimate"], color=f"C{i}", marker="o", ms=3, label=model)
        ax.fill_between(group["relative_depth"], group["ci_low"], group["ci_high"], color=f"C{i}", alpha=0.2)
        ax.axvline(float(group["chosen_depth"].iloc[0]), color=f"C{i}", ls=":", lw=1,
                   label=f"{model}: chosen layer")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel("relative depth (layer / number of layers)")
    ax.set_ylabel(f"{statistic} across scan datasets ({units})")
    ax.legend(fontsize=7, loc="best")
    ax.set_title(title or f"Layer profiles on one relative-depth axis, {framing} (bands: 95% CIs)", fontsize=9)
    fig.tight_layout()
    return fig
