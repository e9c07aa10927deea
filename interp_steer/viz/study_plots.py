"""Figures of the Tan et al. study (:mod:`interp_steer.runs.study`): per-sample steerability violins beside the
anti-steerable fraction, propensity curves with intervals, ID vs OOD steerability coloured by prompt variant, and a
placeholder figure for a panel whose data is missing.

Every function takes tidy tables of :mod:`interp_steer.evaluation`, plots one framing (one unit: logits for A/B,
nats for free text) and returns a matplotlib Figure with a title stating n, units on the axes, a legend, reference
lines, and at most ``max_rows`` labelled rows per panel.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from interp_steer.errors import ConfigError
from interp_steer.evaluation.tables import require_columns as _need
from interp_steer.stats.intervals import mean_interval


def short_label(name: str, width: int = 40) -> str:
    """A dataset spec as a tick label: the ``persona:`` source and ``@free_text`` framing dropped (the figure states
    them), a long name wrapped onto two lines at a hyphen rather than cut (cut names share their prefixes)."""
    text = str(name).replace("@free_text", "")
    text = text.split(":", 1)[1] if text.startswith("persona:") else text
    if len(text) <= width:
        return text
    cut = text.rfind("-", 0, len(text) // 2 + 8)
    cut = cut if cut > 0 else len(text) // 2
    head, tail = text[: cut + 1], text[cut + 1:]
    return head + "\n" + (tail if len(tail) <= width + 6 else tail[: width + 5] + "…")


def plot_steerability_violins(
    per_sample: pd.DataFrame,
    dataset_cis: pd.DataFrame,
    *,
    datasets: list[str] | None = None,
    units: str,
    max_rows: int = 40,
    title: str | None = None,
) -> Figure:
    """Left: a violin of the per-sample steerability (``slope``, in ``units``) per dataset, with its median; right:
    the dataset's anti-steerable fraction (share of slopes < 0) with its 95% CI (``dataset_cis``: the
    ``level == "dataset"`` rows of :func:`~interp_steer.evaluation.steerability_cis`) and the 50% line.
    ``datasets``: which rows to show, in order (default: all, sorted by median slope)."""
    _need(per_sample, ["dataset", "slope"], "plot_steerability_violins")
    _need(dataset_cis, ["dataset", "statistic", "estimate", "ci_low", "ci_high"], "plot_steerability_violins")
    if datasets is None:
        datasets = per_sample.groupby("dataset")["slope"].median().sort_values().index.tolist()
    if not datasets:
        raise ConfigError("plot_steerability_violins: no datasets to plot")
    if len(datasets) > max_rows:
        raise ConfigError(f"plot_steerability_violins: {len(datasets)} datasets > max_rows={max_rows}; select fewer "
                          "(e.g. interp_steer.runs.study.select_datasets) or plot the summary forest plot instead")
    values = [per_sample.loc[per_sample["dataset"] == d, "slope"].dropna().to_numpy(dtype=float) for d in datasets]
    anti = dataset_cis[dataset_cis["statistic"] == "anti_steerable_fraction"].set_index("dataset")
    y = np.arange(len(datasets))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, max(3.4, 0.52 * len(datasets) + 2.4)), sharey=True,
                                      gridspec_kw={"width_ratios": [2.2, 1]})
    drawable = [i for i, v in enumerate(values) if len(v) >= 2 and np.ptp(v) > 0]
    if drawable:
        parts = left.violinplot([values[i] for i in drawable], positions=y[drawable], orientation="horizontal",
                                showmedians=True, showextrema=False, widths=0.8)
        for body in parts["bodies"]:
            body.set_facecolor("C0")
            body.set_alpha(0.45)
    for i, v in enumerate(values):
        left.scatter(v, np.full(len(v), y[i]), s=4, color="C0", alpha=0.5, zorder=3)
    left.axvline(0, color="C3", ls="--", lw=1)
    left.set_yticks(y, [short_label(d) for d in datasets], fontsize=7)
    left.set_xlabel(f"per-sample steerability ({units})")
    left.set_ylabel("dataset")
    est = anti["estimate"].reindex(datasets).to_numpy(dtype=float) * 100
    low = anti["ci_low"].reindex(datasets).to_numpy(dtype=float) * 100
    high = anti["ci_high"].reindex(datasets).to_numpy(dtype=float) * 100
    right.barh(y, est, color="C3", alpha=0.7, label="anti-steerable samples")
    right.errorbar(est, y, xerr=np.vstack([est - low, high - est]).clip(min=0), fmt="none", ecolor="k", elinewidth=1,
                   capsize=2, label="95% CI (bootstrap over samples)")
    right.axvline(50, color="k", ls=":", lw=1, label="50% anti-steerable")
    right.set_xlim(0, 100)
    right.set_xlabel("anti-steerable samples (%, slope < 0)")
    handles = [Patch(color="C0", alpha=0.45, label="per-sample distribution (violin, median bar)"),
               Line2D([], [], color="C0", marker="o", ls="", ms=3, label="one test sample"),
               Line2D([], [], color="C3", ls="--", label="slope 0 (anti-steerable below)"),
               *right.get_legend_handles_labels()[0]]
    fig.legend(handles=handles, fontsize=7, loc="lower center", ncol=3, bbox_to_anchor=(0.5, 0.0))
    n = int(sum(len(v) for v in values))
    fig.suptitle(title or f"Per-sample steerability ({len(datasets)} datasets, {n} samples)", fontsize=10)
    fig.tight_layout(rect=(0, 0.75 / fig.get_figheight(), 1, 1))
    return fig


def plot_propensity_curves_ci(
    propensities: pd.DataFrame,
    *,
    units: str,
    datasets: list[str] | None = None,
    max_rows: int = 40,
    title: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> Figure:
    """Mean propensity (in ``units``) against the steering multiplier per dataset, with the 95% percentile-bootstrap
    band of the mean over the dataset's samples (:func:`~interp_steer.stats.intervals.mean_interval`), and the 0
    line."""
    _need(propensities, ["dataset", "sample_id", "multiplier", "propensity"], "plot_propensity_curves_ci")
    datasets = datasets or sorted(propensities["dataset"].unique())
    if len(datasets) > max_rows:
        raise ConfigError(f"plot_propensity_curves_ci: {len(datasets)} datasets > max_rows={max_rows}; select fewer")
    fig, ax = plt.subplots(figsize=(8.5, 5.0))
    n_samples = 0
    for i, name in enumerate(datasets):
        group = propensities[propensities["dataset"] == name]
        stats = group.groupby("multiplier")["propensity"].agg(["mean", "count"]).sort_index()
        bands = [mean_interval(group.loc[group["multiplier"] == m, "propensity"], n_boot=n_boot, seed=seed)
                 for m in stats.index]
        color = plt.get_cmap("tab20")(i % 20)
        ax.plot(stats.index, stats["mean"], "o-", ms=3, color=color, lw=1.4,
                label=f"{short_label(name, 60)} (n={int(stats['count'].max())})")
        ax.fill_between(stats.index, [b.low for b in bands], [b.high for b in bands], color=color, alpha=0.15)
        n_samples += int(group["sample_id"].nunique())
    ax.axhline(0, color="grey", ls=":", lw=0.8, label="no preference (propensity 0)")
    ax.axvline(0, color="grey", ls="--", lw=0.6, label="unsteered (multiplier 0)")
    ax.set_xlabel("steering multiplier (× CAA vector)")
    ax.set_ylabel(f"mean propensity ({units}, toward the behaviour)")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title or f"Propensity vs multiplier ({len(datasets)} datasets, {n_samples} samples; "
                 "bands: 95% CI of the mean)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_id_vs_ood_by_variant(
    per_dataset: pd.DataFrame,
    *,
    units: str,
    base: str = "BASE",
    title: str | None = None,
) -> Figure:
    """In-distribution (the ``base`` vector on ``base`` prompts) against out-of-distribution steerability (the
    ``base`` vector on variant Y's prompts), one point per (dataset, Y ≠ base) with both 95% CIs, coloured by Y;
    the y = x line (OOD as steerable as ID) and y = 0. ``per_dataset``: ``relative_steerability_table(...)
    ["per_dataset"]`` (columns ``slope``, ``slope_ci_low``, ``slope_ci_high``)."""
    _need(per_dataset, ["dataset", "train_variant", "variant", "slope", "slope_ci_low", "slope_ci_high"],
          "plot_id_vs_ood_by_variant")
    rows = per_dataset[per_dataset["train_variant"] == base]
    ident = rows[rows["variant"] == base].set_index("dataset")
    ood = rows[rows["variant"] != base]
    if ident.empty or ood.empty:
        raise ConfigError(f"plot_id_vs_ood_by_variant: need the {base}→{base} and {base}→Y cells")
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    for i, (variant, group) in enumerate(ood.groupby("variant", sort=True)):
        x = ident["slope"].reindex(group["dataset"]).to_numpy(dtype=float)
        xl = ident["slope_ci_low"].reindex(group["dataset"]).to_numpy(dtype=float)
        xh = ident["slope_ci_high"].reindex(group["dataset"]).to_numpy(dtype=float)
        y, yl, yh = (group[c].to_numpy(dtype=float) for c in ("slope", "slope_ci_low", "slope_ci_high"))
        ax.errorbar(x, y, xerr=np.vstack([x - xl, xh - x]).clip(min=0), yerr=np.vstack([y - yl, yh - y]).clip(min=0),
                    fmt="o", ms=4, color=f"C{i % 10}", elinewidth=0.6, alpha=0.85, label=f"{base} vector on {variant}")
    values = np.concatenate([ident["slope"].to_numpy(dtype=float), ood["slope"].to_numpy(dtype=float)])
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="grey", ls="--", lw=0.8, label="y = x (OOD = ID)")
    ax.axhline(0, color="grey", ls=":", lw=0.8)
    ax.set_xlabel(f"ID steerability: {base} vector on {base} prompts ({units})")
    ax.set_ylabel(f"OOD steerability: {base} vector on variant prompts ({units})")
    ax.legend(fontsize=7, loc="best")
    n = f"{len(ood)} (dataset, variant) points, {ood['dataset'].nunique()} datasets"
    if "n_samples" in ood.columns:
        n += f", {int(ood.groupby('dataset')['n_samples'].first().sum())} test samples"
    ax.set_title(title or f"ID vs OOD steerability ({n}; bars: 95% CIs)", fontsize=9)
    fig.tight_layout()
    return fig


def placeholder_figure(title: str, message: str) -> Figure:
    """A figure that says why its panel has no data (e.g. no point passes the own-slope cutoff)."""
    fig, ax = plt.subplots(figsize=(6.4, 2.4))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=9, wrap=True)
    ax.set_title(title, fontsize=10)
    return fig


def plot_variant_heatmap(
    across: pd.DataFrame,
    *,
    statistic: str = "relative_steerability_median",
    units: str = "ratio",
    title: str | None = None,
) -> Figure:
    """The 5 × 5 ID/OOD grid as a heatmap: rows = the vector's variant X, columns = the prompts' variant Y, each cell
    the across-dataset ``statistic`` (``relative_steerability_table(...)["across_datasets"]``) with its 95% CI and
    the number of datasets behind it written in the cell."""
    from interp_steer.evaluation.variants import VARIANTS

    _need(across, ["train_variant", "variant", "statistic", "estimate", "ci_low", "ci_high", "n_datasets"],
          "plot_variant_heatmap")
    rows = across[across["statistic"] == statistic]
    if rows.empty:
        raise ConfigError(f"plot_variant_heatmap: no rows with statistic {statistic!r}")
    order = [v for v in VARIANTS if v in set(rows["variant"]) | set(rows["train_variant"])]
    cells = rows.set_index(["train_variant", "variant"])
    grid = np.full((len(order), len(order)), np.nan)
    fig, ax = plt.subplots(figsize=(7.4, 6.0))
    for i, x in enumerate(order):
        for j, y in enumerate(order):
            if (x, y) in cells.index:
                grid[i, j] = float(cells.loc[(x, y), "estimate"])
    finite = grid[np.isfinite(grid)]
    spread = float(np.max(np.abs(finite - 1.0))) if finite.size else 1.0
    image = ax.imshow(grid, cmap="RdBu", vmin=1 - max(spread, 0.05), vmax=1 + max(spread, 0.05))
    for i, x in enumerate(order):
        for j, y in enumerate(order):
            if (x, y) not in cells.index or not np.isfinite(grid[i, j]):
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=7)
                continue
            row = cells.loc[(x, y)]
            ax.text(j, i, f"{row['estimate']:.2f}\n[{row['ci_low']:.2f}, {row['ci_high']:.2f}]\n"
                          f"{int(row['n_datasets'])} sets", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(order)), order, fontsize=8)
    ax.set_yticks(range(len(order)), order, fontsize=8)
    ax.set_xlabel("prompts' variant Y")
    ax.set_ylabel("vector's variant X")
    fig.colorbar(image, ax=ax, label=f"{statistic} ({units})", shrink=0.8)
    ax.set_title(title or f"{statistic} over datasets, X → Y (95% CIs; cells: estimate [CI], datasets)", fontsize=9)
    fig.tight_layout()
    return fig
