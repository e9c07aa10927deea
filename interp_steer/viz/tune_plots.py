"""Plots of a tune run: behaviour shift against its cost (KL on the neutral corpus), one curve per layer."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from interp_steer.viz.plots import _need

SHIFT_UNITS = "behaviour shift: Δ propensity vs unsteered (logit diff. A/B; log-prob diff. free text)"
KL_UNITS = "KL(unsteered ‖ steered) on neutral text, nats/token"


def plot_tune_pareto(summary: pd.DataFrame, *, kl_budget: float | None = None, recommendation: dict | None = None,
                     baseline: pd.DataFrame | None = None, title: str | None = None) -> Figure:
    """Shift (y, with its 95% interval) against KL (x, with its 95% interval) for every (layer, multiplier) of
    ``summary`` (:func:`~interp_steer.runs.tune.tune_summary`); points of one layer joined in multiplier order and
    labelled with their multiplier. Marks the ``kl_budget`` (dashed line), the ``recommendation`` (star) and the
    prompting baseline's SYS_POS arm (``baseline`` rows with method ``prompting``, arm ``pos``; a square).
    The x axis is symmetric-log (linear below a tenth of the budget), since KL spans orders of magnitude."""
    _need(summary, ["layer", "multiplier", "shift", "shift_lo", "shift_hi", "kl", "kl_lo", "kl_hi"], "plot_tune_pareto")
    units = str(summary["units"].iloc[0]) if "units" in summary.columns else "raw"
    fig, ax = plt.subplots(figsize=(7.5, 5))
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, summary["layer"].nunique()))
    for color, (layer, group) in zip(colors, summary.sort_values("multiplier").groupby("layer")):
        x, y = group["kl"].to_numpy(), group["shift"].to_numpy()
        xerr = np.vstack([x - group["kl_lo"].to_numpy(), group["kl_hi"].to_numpy() - x]).clip(min=0)
        yerr = np.vstack([y - group["shift_lo"].to_numpy(), group["shift_hi"].to_numpy() - y]).clip(min=0)
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, marker="o", ms=4, capsize=2, lw=1.2, color=color, label=f"layer {layer}")
        for xi, yi, m in zip(x, y, group["multiplier"]):
            ax.annotate(f"{m:g}", (xi, yi), textcoords="offset points", xytext=(4, 3), fontsize=7, color=color)
    if kl_budget is not None:
        ax.axvline(kl_budget, ls="--", color="crimson", lw=1, label=f"KL budget {kl_budget:g}")
    if recommendation and recommendation.get("found"):
        ax.plot([recommendation["kl"]], [recommendation["shift"]], marker="*", ms=16, color="crimson", ls="none",
                label=f"recommended: layer {recommendation['layer']}, m={recommendation['multiplier']:g} ({units})")
    if baseline is not None and len(baseline):
        arm = baseline[(baseline["method"] == "prompting") & (baseline["arm"] == "pos")]
        if len(arm) and np.isfinite(arm["kl"].iloc[0]):
            row = arm.iloc[0]
            ax.errorbar([row["kl"]], [row["shift"]], xerr=[[row["kl"] - row["kl_lo"]], [row["kl_hi"] - row["kl"]]],
                        yerr=[[row["shift"] - row["shift_lo"]], [row["shift_hi"] - row["shift"]]], marker="s", ms=8,
                        color="darkorange", capsize=2, ls="none", label="prompting baseline (SYS_POS persona)")
    ax.axhline(0, color="grey", lw=0.6)
    positive = summary["kl"][summary["kl"] > 0]
    linthresh = (kl_budget / 10) if kl_budget else (float(positive.min()) if len(positive) else 1e-3)
    ax.set_xscale("symlog", linthresh=linthresh)
    ax.set_xlim(left=0.0)
    ax.set_xlabel(KL_UNITS)
    ax.set_ylabel(SHIFT_UNITS, fontsize=8)
    ax.set_title(title or f"Behaviour shift vs cost (multipliers in {units} units; bars: 95% bootstrap CI)", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
