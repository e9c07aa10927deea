"""Figures with their uncertainty: the spurious-factor variance bars, interval (forest) plots of tidy CI tables,
and relative steerability vs the unsteered-propensity difference.

Each function takes a table of :mod:`interp_steer.evaluation` (``spurious_factor_variance``, the tidy tables of
:mod:`~interp_steer.stats.bootstrap`, ``relative_steerability_table``) and returns a matplotlib Figure
with a title that states n, units on the axes and a legend; at most ``max_rows`` labelled rows per panel (more
rows are split over panels side by side).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from interp_steer.errors import ConfigError
from interp_steer.evaluation.tables import require_columns as _need

AB_SLOPE_UNITS = "logit diff. per unit multiplier"
FREE_TEXT_SLOPE_UNITS = "nats per unit multiplier"



def _panels(n_rows: int, max_rows: int, width: float = 6.5, sharex: bool = True) -> tuple[Figure, list]:
    """Side-by-side panels of at most ``max_rows`` rows; ``sharex``: one x-scale in every panel."""
    if max_rows < 1:
        raise ConfigError(f"max_rows={max_rows}: use at least 1")
    n_panels = max(1, int(np.ceil(n_rows / max_rows)))
    per_panel = int(np.ceil(n_rows / n_panels))
    fig, axes = plt.subplots(1, n_panels, figsize=(width * n_panels, max(2.8, 0.28 * per_panel + 1.6)), squeeze=False,
                             sharex=sharex)
    return fig, list(axes[0])


def _x_ticks(ax) -> None:
    """Few x ticks, in scientific notation when the values are tiny (so tick labels never run into each other)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.1e}" if 0 < abs(v) < 1e-2 else f"{v:g}"))
    ax.tick_params(axis="x", labelsize=7)


def _label(name: object) -> str:
    from interp_steer.viz.study_plots import short_label

    return short_label(str(name), width=60)


def _chunks(n_rows: int, n_panels: int) -> list[slice]:
    size = int(np.ceil(n_rows / n_panels))
    return [slice(i, min(n_rows, i + size)) for i in range(0, n_rows, size)]


def plot_spurious_variance_split(
    spurious: pd.DataFrame,
    *,
    units: str = AB_SLOPE_UNITS,
    label: str = "dataset",
    max_rows: int = 40,
    title: str | None = None,
) -> Figure:
    """Stacked horizontal bars per dataset: the sample variance of per-sample steerability explained by ``is_A``,
    additionally by ``is_Yes``, and unexplained (``spurious_factor_variance`` columns ``var_*``), in ``units``²."""
    _need(spurious, [label, "var_is_A", "var_is_Yes", "var_unexplained"], "plot_spurious_variance_split")
    table = spurious.assign(_total=spurious[["var_is_A", "var_is_Yes", "var_unexplained"]].fillna(0).sum(axis=1))
    table = table.sort_values("_total", ascending=True).reset_index(drop=True)
    fig, axes = _panels(len(table), max_rows, sharex=False)  # the panels' ranges differ by orders of magnitude
    parts = (("var_is_A", "is_A (answer letter)", "C0"), ("var_is_Yes", "+ is_Yes (answer means Yes)", "C1"),
             ("var_unexplained", "unexplained", "0.75"))
    for ax, rows in zip(axes, _chunks(len(table), len(axes))):
        chunk = table.iloc[rows]
        left = np.zeros(len(chunk))
        for column, name, color in parts:
            values = chunk[column].fillna(0).to_numpy(dtype=float)
            ax.barh([_label(x) for x in chunk[label]], values, left=left, color=color, label=name)
            left += values
        top = float(chunk["_total"].max()) if len(chunk) else 0.0
        ax.set_xlabel(f"variance of per-sample steerability\n(({units})²; this panel's own scale, max {top:.1e})",
                      fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        _x_ticks(ax)
    axes[0].set_ylabel(label)
    axes[0].legend(fontsize=7, loc="lower right")
    n_samples = f", {int(table['n_samples'].sum())} samples" if "n_samples" in table.columns else ""
    fig.suptitle(title or f"Spurious factors: variance of per-sample steerability ({len(table)} datasets{n_samples})",
                 fontsize=10)
    fig.tight_layout()
    return fig


def plot_intervals(
    table: pd.DataFrame,
    *,
    statistic: str,
    label: str = "dataset",
    units: str = "",
    reference: float | None = None,
    reference_label: str | None = None,
    max_rows: int = 40,
    title: str | None = None,
) -> Figure:
    """Forest plot of one ``statistic`` of a tidy interval table (estimate and ``ci_low``–``ci_high`` per ``label``),
    sorted by the estimate, with an optional vertical reference line (e.g. 0.5 for the anti-steerable fraction)."""
    _need(table, [label, "statistic", "estimate", "ci_low", "ci_high"], "plot_intervals")
    rows = table[table["statistic"] == statistic].sort_values("estimate").reset_index(drop=True)
    if rows.empty:
        raise ConfigError(f"plot_intervals: no rows with statistic {statistic!r}; have {sorted(table['statistic'].unique())}")
    fig, axes = _panels(len(rows), max_rows, width=5.5)
    for ax, part in zip(axes, _chunks(len(rows), len(axes))):
        chunk = rows.iloc[part]
        names = chunk[label].fillna("all datasets").astype(str).to_numpy()
        y = np.arange(len(chunk))
        err = np.vstack([chunk["estimate"] - chunk["ci_low"], chunk["ci_high"] - chunk["estimate"]]).clip(min=0)
        ax.errorbar(chunk["estimate"], y, xerr=err, fmt="o", ms=3, color="C0", ecolor="C0", elinewidth=1,
                    label="estimate with 95% CI" if "confidence" not in chunk else
                    f"estimate with {100 * float(chunk['confidence'].iloc[0]):.0f}% CI")
        if reference is not None:
            ax.axvline(reference, color="C3", ls="--", lw=1, label=reference_label or f"reference {reference:g}")
        ax.set_yticks(y, [_label(x) for x in names], fontsize=7)
        ax.set_xlabel(f"{statistic} ({units})" if units else statistic)
        _x_ticks(ax)
    axes[0].set_ylabel(label)
    axes[0].legend(fontsize=7, loc="lower right")
    n = f"{len(rows)} {label}s" + (f", {int(rows['n_samples'].sum())} samples" if "n_samples" in rows.columns else "")
    method = f"; {rows['method'].iloc[0]} bootstrap" if "method" in rows.columns else ""
    fig.suptitle(title or f"{statistic} with confidence intervals ({n}{method})", fontsize=10)
    fig.tight_layout()
    return fig


def plot_relative_vs_propensity_difference(
    per_dataset: pd.DataFrame,
    *,
    correlation: pd.DataFrame | None = None,
    propensity_units: str = "logit diff.",
    x: str = "abs_propensity_difference",
    y_limits: tuple[float, float] | None = (-0.5, 2.0),
    title: str | None = None,
) -> Figure:
    """Tan et al.'s generalisation figure: relative steerability of X's vector on Y (y) against the unsteered
    propensity difference between the test and train prompts (x; default the per-example absolute difference
    ``mean_i |u_Y(i) − u_X(i)|``), one point per (dataset, X ≠ Y) with its 95% CI, coloured by the test variant.
    ``y_limits``: the y range shown (the paper's axis); points or interval ends outside it are drawn at the edge as
    triangles and counted in the legend, so one outlier cannot squash the rest. ``correlation``
    (``generalisation_correlation``) is quoted in the title."""
    _need(per_dataset, ["dataset", "train_variant", "variant", "relative", x], "plot_relative_vs_propensity_difference")
    points = per_dataset[(per_dataset["train_variant"] != per_dataset["variant"])].dropna(subset=["relative", x])
    if points.empty:
        raise ConfigError("plot_relative_vs_propensity_difference: no off-diagonal point passes the own-slope cutoff")
    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    lo, hi = y_limits if y_limits is not None else (-np.inf, np.inf)
    clipped = 0
    for i, (variant, group) in enumerate(points.groupby("variant", sort=True)):
        rel = group["relative"].to_numpy(dtype=float)
        shown = np.clip(rel, lo, hi)
        low = np.clip(group.get("relative_ci_low", group["relative"]).to_numpy(dtype=float), lo, hi)
        high = np.clip(group.get("relative_ci_high", group["relative"]).to_numpy(dtype=float), lo, hi)
        outside = (rel < lo) | (rel > hi)
        clipped += int(outside.sum() + (((group.get("relative_ci_low", group["relative"]) < lo)
                                         | (group.get("relative_ci_high", group["relative"]) > hi)) & ~outside).sum())
        xs = group[x].to_numpy(dtype=float)
        xerr = None
        if {f"{x}_ci_low", f"{x}_ci_high"} <= set(group.columns):
            xerr = np.vstack([xs - group[f"{x}_ci_low"], group[f"{x}_ci_high"] - xs]).clip(min=0)
        ax.errorbar(xs[~outside], shown[~outside], xerr=None if xerr is None else xerr[:, ~outside],
                    yerr=np.vstack([shown - low, high - shown])[:, ~outside].clip(min=0), fmt="o", ms=4,
                    color=f"C{i % 10}", elinewidth=0.6, alpha=0.8, label=f"test variant {variant}")
        if outside.any():
            ax.scatter(xs[outside], shown[outside], marker="^", color=f"C{i % 10}", s=30, zorder=4)
    ax.axhline(1.0, color="grey", ls="--", lw=0.8, label="as steerable as Y's own vector")
    ax.axhline(0.0, color="grey", ls=":", lw=0.8)
    if y_limits is not None:
        ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
        ax.plot([], [], ls="", marker="^", color="k",
                label=f"{clipped} point(s) / CI end(s) beyond [{lo:g}, {hi:g}], drawn at the edge")
    what = "mean per-example |unsteered propensity, test − train|" if x.startswith("abs_") else \
        "unsteered propensity, test − train variant"
    ax.set_xlabel(f"{what} ({propensity_units})")
    ax.set_ylabel("relative steerability slope(X→Y) / |slope(Y→Y)| (ratio)")
    ax.legend(fontsize=7, loc="best")
    head = f"{len(points)} (dataset, train ≠ test) points, {points['dataset'].nunique()} datasets"
    if correlation is not None and not correlation.empty:
        row = correlation.iloc[0]
        head += f"; {row['statistic']} = {row['estimate']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
    ax.set_title(title or f"Relative steerability vs unsteered propensity difference\n({head})", fontsize=9)
    fig.tight_layout()
    return fig


def plot_layer_profile(
    cis: pd.DataFrame,
    *,
    statistic: str = "mean_slope",
    layer: str = "layer",
    series: str | None = None,
    units: str = AB_SLOPE_UNITS,
    chosen: int | None = None,
    title: str | None = None,
) -> Figure:
    """A statistic across layers with its CI band, from ``steerability_cis(per_sample, by=("layer", ...),
    levels=("across_datasets",))``; one line per value of ``series`` (e.g. ``"vector"``), the ``chosen`` layer marked."""
    _need(cis, [layer, "statistic", "estimate", "ci_low", "ci_high"], "plot_layer_profile")
    rows = cis[cis["statistic"] == statistic]
    if "level" in rows.columns:
        rows = rows[rows["level"] == "across_datasets"]
    if rows.empty:
        raise ConfigError(f"plot_layer_profile: no across-dataset rows with statistic {statistic!r}")
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    groups = rows.groupby(series, sort=True) if series else [(statistic, rows)]
    for i, (name, group) in enumerate(groups):
        group = group.sort_values(layer)
        color = f"C{i % 10}"
        ax.plot(group[layer], group["estimate"], "o-", color=color, ms=3, label=f"{name}")
        ax.fill_between(group[layer], group["ci_low"], group["ci_high"], color=color, alpha=0.2)
    ax.fill_between([], [], [], color="grey", alpha=0.2, label="95% CI (two-level bootstrap)")
    if statistic == "anti_steerable_fraction":
        ax.axhline(0.5, color="C3", ls="--", lw=1, label="50% anti-steerable")
    else:
        ax.axhline(0.0, color="grey", ls=":", lw=0.8)
    if chosen is not None:
        ax.axvline(chosen, color="k", ls="--", lw=0.8, label=f"chosen layer {chosen}")
    ax.set_xlabel("layer")
    ax.set_ylabel(f"{statistic} ({'share of samples' if statistic == 'anti_steerable_fraction' else units})")
    ax.legend(fontsize=7, loc="best")
    n_datasets = int(rows["n_datasets"].max()) if "n_datasets" in rows.columns else None
    n = f" ({n_datasets} datasets, {int(rows['n_samples'].max())} samples per layer)" if n_datasets else ""
    ax.set_title(title or f"{statistic} by layer{n}", fontsize=10)
    fig.tight_layout()
    return fig
