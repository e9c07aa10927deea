"""Reliability plots: each function takes a tidy DataFrame and returns a matplotlib Figure (Agg backend).

Inputs are the tables of :mod:`interp_steer.evaluation` (propensities, per-sample steerability, summaries,
spurious-factor R²). Save with :func:`save_figure` (PNG).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from interp_steer.evaluation.tables import require_columns as _need  # noqa: E402

PROPENSITY_UNITS = "propensity (logit diff. A/B; log-prob diff. free text)"
SLOPE_UNITS = "steerability (Δ propensity per unit multiplier)"
KIND_PROPENSITY_UNITS = {"ab": "propensity (logits: logit diff. of the answer letters)",
                         "free_text": "propensity (nats: log-prob diff. of the completions)"}
SLOPE_PER_UNIT = {"ab": "logits per unit multiplier", "free_text": "nats per unit multiplier"}
KIND_SLOPE_UNITS = {kind: f"steerability ({units})" for kind, units in SLOPE_PER_UNIT.items()}


def _by_kind(frame: pd.DataFrame) -> list[tuple[str | None, pd.DataFrame]]:
    """``frame`` split by its ``kind`` column (A/B rows are in logits, free-text rows in nats: never one axis);
    ``[(None, frame)]`` without one."""
    if "kind" not in frame.columns or frame["kind"].nunique(dropna=True) < 1:
        return [(None, frame)]
    return [(str(kind), part) for kind, part in frame.groupby("kind", sort=True)]


def _kind_axes(parts: list, width: float, height: float) -> tuple[Figure, list]:
    fig, axes = plt.subplots(1, len(parts), figsize=(width * len(parts), height), squeeze=False)
    return fig, list(axes[0])



def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG (parent folders created) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_propensity_curves(propensities: pd.DataFrame, n_individual: int = 5, seed: int = 0, title: str | None = None) -> Figure:
    """Mean ± std propensity vs multiplier per dataset, with a few individual sample curves (thin lines); A/B
    (logits) and free-text (nats) rows of a table with a ``kind`` column go to separate panels."""
    _need(propensities, ["dataset", "sample_id", "multiplier", "propensity"], "plot_propensity_curves")
    parts = _by_kind(propensities)
    fig, axes = _kind_axes(parts, 6.5, 4.2)
    rng = np.random.default_rng(seed)
    for ax, (kind, frame) in zip(axes, parts):
        for i, (dataset, group) in enumerate(frame.groupby("dataset", sort=True)):
            color = f"C{i % 10}"
            stats = group.groupby("multiplier")["propensity"].agg(["mean", "std"]).fillna(0.0)
            ax.plot(stats.index, stats["mean"], color=color, lw=2, label=f"{dataset} (mean ± std)")
            ax.fill_between(stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"], color=color,
                            alpha=0.2)
            ids = group["sample_id"].unique()
            for sid in rng.choice(ids, size=min(n_individual, len(ids)), replace=False):
                curve = group[group["sample_id"] == sid].sort_values("multiplier")
                ax.plot(curve["multiplier"], curve["propensity"], color=color, lw=0.7, alpha=0.5)
        ax.axhline(0, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("steering multiplier")
        ax.set_ylabel(KIND_PROPENSITY_UNITS.get(kind or "", PROPENSITY_UNITS))
        head = title or "Propensity vs steering multiplier"
        ax.set_title(head if len(parts) == 1 else f"{head} ({kind})")
        ax.legend(fontsize=7, loc="best")
    if len(parts) > 1:
        fig.tight_layout()
    return fig


def plot_steerability_distribution(per_sample: pd.DataFrame, title: str | None = None) -> Figure:
    """Box plot of per-sample steerability for each dataset, datasets sorted by median steerability; A/B (logits)
    and free-text (nats) rows of a table with a ``kind`` column go to separate panels."""
    _need(per_sample, ["dataset", "slope"], "plot_steerability_distribution")
    parts = _by_kind(per_sample)
    rows = max(frame["dataset"].nunique() for _, frame in parts)
    fig, axes = _kind_axes(parts, 6.5, max(2.5, 0.35 * rows + 1.2))
    for ax, (kind, frame) in zip(axes, parts):
        order = frame.groupby("dataset")["slope"].median().sort_values().index.tolist()
        data = [frame.loc[frame["dataset"] == d, "slope"].dropna().to_numpy() for d in order]
        ax.boxplot(data, orientation="horizontal", showfliers=True, widths=0.6)
        ax.set_yticks(range(1, len(order) + 1), order, fontsize=7)
        ax.axvline(0, color="grey", lw=0.8, ls=":", label="slope 0 (anti-steerable below)")
        ax.set_xlabel(KIND_SLOPE_UNITS.get(kind or "", SLOPE_UNITS))
        ax.set_ylabel("dataset (sorted by median)")
        head = title or "Per-sample steerability by dataset"
        ax.set_title(head if len(parts) == 1 else f"{head} ({kind})")
        ax.legend(fontsize=7, loc="lower right")
    if len(parts) > 1:
        fig.tight_layout()
    return fig


def plot_anti_steerable_fraction(summary: pd.DataFrame, title: str | None = None) -> Figure:
    """Bar chart of the share of anti-steerable samples (slope < 0) per dataset, sorted."""
    _need(summary, ["dataset", "anti_steerable_fraction"], "plot_anti_steerable_fraction")
    table = summary.groupby("dataset")["anti_steerable_fraction"].mean().sort_values()
    fig, ax = plt.subplots(figsize=(6.5, max(2.5, 0.35 * len(table) + 1.2)))
    ax.barh(table.index, table.to_numpy() * 100, color="C3")
    ax.set_xlim(0, 100)
    ax.set_xlabel("anti-steerable samples (%)")
    ax.set_ylabel("dataset")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(title or "Fraction of anti-steerable samples")
    return fig


def plot_layer_scan(summary: pd.DataFrame, title: str | None = None, units: str | None = None) -> Figure:
    """Mean steerability (left axis, in ``units``; default from a single ``kind`` column, else "Δ propensity per
    unit multiplier") and anti-steerable fraction (right axis) vs layer, one line per dataset."""
    _need(summary, ["dataset", "layer", "mean_slope", "anti_steerable_fraction"], "plot_layer_scan")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    twin = ax.twinx()
    for i, (dataset, group) in enumerate(summary.sort_values("layer").groupby("dataset", sort=True)):
        ax.plot(group["layer"], group["mean_slope"], marker="o", color=f"C{i % 10}", label=dataset)
        twin.plot(group["layer"], group["anti_steerable_fraction"] * 100, ls="--", color=f"C{i % 10}", alpha=0.6)
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("layer")
    kinds = summary["kind"].dropna().unique() if "kind" in summary.columns else []
    units = units or (SLOPE_PER_UNIT.get(str(kinds[0]), "Δ propensity per unit multiplier") if len(kinds) == 1
                      else "Δ propensity per unit multiplier")
    ax.set_ylabel(f"mean steerability, {units} (solid)")
    twin.set_ylabel("anti-steerable samples, % (dashed)")
    twin.set_ylim(0, 100)
    ax.set_title(title or "Layer scan: steerability vs layer")
    ax.legend(fontsize=7, loc="upper left")
    return fig


def plot_id_vs_ood(table: pd.DataFrame, x: str = "id_steerability", y: str = "ood_steerability",
                   label: str = "dataset", title: str | None = None, units: str = "Δ propensity per unit multiplier") -> Figure:
    """Scatter of in-distribution vs out-of-distribution steerability (one point per row, both in ``units``, e.g.
    "nats per unit multiplier" for free text), with y = x."""
    _need(table, [x, y], "plot_id_vs_ood")
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(table[x], table[y], s=25, alpha=0.8)
    if label in table.columns and len(table) <= 40:
        for _, row in table.iterrows():
            ax.annotate(str(row[label]), (row[x], row[y]), fontsize=6, alpha=0.7)
    lo = float(np.nanmin(table[[x, y]].to_numpy()))
    hi = float(np.nanmax(table[[x, y]].to_numpy()))
    ax.plot([lo, hi], [lo, hi], color="grey", ls=":", lw=1, label="y = x")
    ax.set_xlabel(f"{x.replace('_', ' ')} ({units})")
    ax.set_ylabel(f"{y.replace('_', ' ')} ({units})")
    ax.set_title(title or "In-distribution vs out-of-distribution steerability")
    ax.legend(fontsize=7)
    return fig


def plot_spurious_variance(spurious: pd.DataFrame, title: str | None = None) -> Figure:
    """Stacked bars per dataset: steerability variance explained by is_A, plus the increment from is_Yes."""
    _need(spurious, ["dataset", "r2_is_A", "r2_increment_is_Yes"], "plot_spurious_variance")
    table = spurious.set_index("dataset").sort_values("r2_is_A")
    fig, ax = plt.subplots(figsize=(6.5, max(2.5, 0.35 * len(table) + 1.2)))
    a = table["r2_is_A"].fillna(0).to_numpy() * 100
    inc = table["r2_increment_is_Yes"].fillna(0).clip(lower=0).to_numpy() * 100
    ax.barh(table.index, a, color="C0", label="is_A")
    ax.barh(table.index, inc, left=a, color="C1", label="+ is_Yes")
    ax.set_xlim(0, 100)
    ax.set_xlabel("variance of per-sample steerability explained, R² (%)")
    ax.set_ylabel("dataset")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(title or "Steerability variance explained by spurious factors")
    ax.legend(fontsize=7)
    return fig
