"""Figures of the anti-steerable analysis (:mod:`interp_steer.runs.why`): patching heatmaps of a steerable and an
anti-steerable sample side by side, held-out factor effects, and the predictor against its baselines.

Each function takes a tidy table and returns a matplotlib Figure (titles, axis units and legends included).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from interp_steer.errors import ConfigError

_COMPONENTS = ("resid_pre", "attn_out", "mlp_out", "head")


def _grid(part: pd.DataFrame, component: str) -> tuple[np.ndarray, list[str], list[int], int | None]:
    """layers × columns shares; the index of the first completion column (positions) for the separator."""
    if component == "head":
        part = part[part["region"] == "all"] if "region" in part.columns else part
        table = part.pivot_table(index="layer", columns="head", values="share", aggfunc="first").sort_index()
        return table.to_numpy(dtype=float), [f"H{int(h)}" for h in table.columns], [int(x) for x in table.index], None
    table = part.pivot_table(index="layer", columns="position", values="share", aggfunc="first").sort_index()
    tokens = part.drop_duplicates("position").set_index("position")
    labels = [f"{str(tokens.loc[p, 'token'])[:12]!r}" for p in table.columns]
    split = None
    if "region" in tokens.columns:
        completion = [i for i, p in enumerate(table.columns) if tokens.loc[p, "region"] == "completion"]
        split = completion[0] if completion else None
    return table.to_numpy(dtype=float), labels, [int(x) for x in table.index], split


def plot_patching_side_by_side(frame: pd.DataFrame, *, title: str | None = None) -> Figure:
    """One column per role (e.g. steerable, anti-steerable), one row per component: the share of the steering
    effect per layer × position (a dashed line separates the last prompt token from the completion) and per
    layer × head (heads patched at every steered position)."""
    needed = {"role", "component", "layer", "position", "head", "share", "token", "metric_clean", "metric_steered"}
    if not needed <= set(frame.columns):
        raise ConfigError(f"plot_patching_side_by_side needs columns {sorted(needed)}; got {list(frame.columns)}")
    roles = list(dict.fromkeys(frame["role"]))
    components = [c for c in _COMPONENTS if (frame["component"] == c).any()]
    if not components or not roles:
        raise ConfigError("plot_patching_side_by_side: no patching rows")
    finite = frame["share"].replace([np.inf, -np.inf], np.nan).abs()
    vmax = max(float(np.nanquantile(finite.to_numpy(dtype=float), 0.99)) if finite.notna().any() else 1.0, 1e-6)
    n_layers = frame["layer"].nunique()
    fig, axes = plt.subplots(len(components), len(roles), squeeze=False,
                             figsize=(6.0 * len(roles) + 1.0, (0.14 * n_layers + 1.4) * len(components)))
    image = None
    for c, role in enumerate(roles):
        part = frame[frame["role"] == role]
        first = part.iloc[0]
        for r, component in enumerate(components):
            ax = axes[r][c]
            grid, labels, layers, split = _grid(part[part["component"] == component], component)
            image = ax.imshow(grid, aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
            ax.set_xticks(range(len(labels)))
            ax.set_xticklabels(labels, rotation=70 if component != "head" else 0, fontsize=6,
                               ha="right" if component != "head" else "center")
            step = max(1, len(layers) // 8)
            ax.set_yticks(range(0, len(layers), step))
            ax.set_yticklabels(layers[::step], fontsize=7)
            ax.set_ylabel("layer", fontsize=8)
            if split is not None:
                ax.axvline(split - 0.5, color="k", ls="--", lw=0.8)
            name = component if component != "head" else "heads (attn.hook_z, all steered positions)"
            heading = f"{role} {first['sample_id']}" if r == 0 else ""
            delta = f"Δmetric {first['metric_steered'] - first['metric_clean']:+.2f} nats" if r == 0 else ""
            ax.set_title("\n".join(x for x in (heading, delta, name) if x), fontsize=8)
            ax.set_xlabel("position (token)" if component != "head" else "head", fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.5, label="share of the steering effect (patched − clean) / (steered − clean)")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_region_shares(summary: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Summed share per component and region (prompt = last prompt token, completion), one bar group per role."""
    needed = {"role", "component", "region", "share"}
    if not needed <= set(summary.columns):
        raise ConfigError(f"plot_region_shares needs {sorted(needed)}; got {list(summary.columns)}")
    part = summary[summary["region"].isin(["prompt", "completion"])]
    table = part.groupby(["role", "component", "region"], sort=False)["share"].sum().unstack(["component", "region"])
    fig, ax = plt.subplots(figsize=(8, 3.6))
    x = np.arange(len(table.columns))
    width = 0.8 / max(1, len(table.index))
    for i, role in enumerate(table.index):
        ax.bar(x + i * width, table.loc[role].to_numpy(dtype=float), width, label=str(role))
    ax.set_xticks(x + width * (len(table.index) - 1) / 2)
    ax.set_xticklabels([f"{c}\n{r}" for c, r in table.columns], fontsize=7)
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_ylabel("summed share of the steering effect")
    ax.set_xlabel("component / region (sites summed over layers after the vector)")
    ax.legend(fontsize=7)
    ax.set_title(title or "Where the effect is carried: last prompt token vs completion", fontsize=9)
    fig.tight_layout()
    return fig


def plot_factor_effects(tests: pd.DataFrame, *, label: str = "factor", title: str | None = None) -> Figure:
    """Held-out Spearman ρ(factor, slope) with its bootstrap CI per factor (filled: CI excludes 0 on the
    discovery half's side), discovery ρ as crosses."""
    needed = {label, "heldout_rho", "heldout_rho_low", "heldout_rho_high", "discovery_rho", "held"}
    if not needed <= set(tests.columns):
        raise ConfigError(f"plot_factor_effects needs {sorted(needed)}; got {list(tests.columns)}")
    fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(tests) + 1.4))
    y = np.arange(len(tests))
    rho = tests["heldout_rho"].to_numpy(dtype=float)
    err = np.vstack([rho - tests["heldout_rho_low"].to_numpy(dtype=float), tests["heldout_rho_high"].to_numpy(dtype=float) - rho])
    held = tests["held"].to_numpy(dtype=bool)
    ax.errorbar(rho[held], y[held], xerr=err[:, held], fmt="o", color="C0", label="held-out ρ, held (CI excludes 0)")
    ax.errorbar(rho[~held], y[~held], xerr=err[:, ~held], fmt="o", mfc="white", color="C0", label="held-out ρ, not held")
    ax.plot(tests["discovery_rho"], y, "x", color="C3", label="discovery-half ρ")
    ax.axvline(0, color="grey", lw=0.6)
    ax.set_yticks(y)
    ax.set_yticklabels([str(v) for v in tests[label]], fontsize=7)
    ax.set_xlabel("Spearman ρ with the per-sample slope (95% bootstrap CI)")
    ax.set_xlim(-1.05, 1.05)
    ax.legend(fontsize=6, loc="best")
    n = int(tests["n_heldout"].iloc[0]) if "n_heldout" in tests.columns and len(tests) else 0
    ax.set_title(title or f"Candidate factors on held-out samples (n = {n})", fontsize=9)
    fig.tight_layout()
    return fig


def plot_predictor(table: pd.DataFrame, *, title: str | None = None) -> Figure:
    """AUC (sign) and R² (size) per predictor with bootstrap CIs; dotted lines at chance (0.5) and 0."""
    needed = {"predictor", "metric", "value", "ci_low", "ci_high"}
    if not needed <= set(table.columns):
        raise ConfigError(f"plot_predictor needs {sorted(needed)}; got {list(table.columns)}")
    group_key = "case" if "case" in table.columns else None
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.35 * table["predictor"].nunique() * (table[group_key].nunique() if group_key else 1) + 1.8))
    for ax, metric, chance in ((axes[0], "AUC", 0.5), (axes[1], "R²", 0.0)):
        part = table[table["metric"] == metric].reset_index(drop=True)
        labels = [f"{r['case']}: {r['predictor']}" if group_key else str(r["predictor"]) for _, r in part.iterrows()]
        y = np.arange(len(part))
        value = part["value"].to_numpy(dtype=float)
        err = np.vstack([value - part["ci_low"].to_numpy(dtype=float), part["ci_high"].to_numpy(dtype=float) - value])
        ax.errorbar(value, y, xerr=np.nan_to_num(err), fmt="o", color="C0", label=f"held-out {metric} (95% CI)")
        ax.axvline(chance, color="grey", ls=":", label="chance" if metric == "AUC" else "no better than the mean")
        ax.set_yticks(y)
        ax.set_yticklabels(labels, fontsize=7)
        ax.set_xlabel(f"{metric} ({'anti-steerable vs not' if metric == 'AUC' else 'per-sample slope'}), out-of-fold")
        ax.legend(fontsize=7)
    fig.suptitle(title or "Predicting steerability before steering", fontsize=10)
    fig.tight_layout()
    return fig
