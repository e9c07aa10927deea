"""Static figures (matplotlib, Agg) for the mechanistic analysis: patching heatmaps and the logit lens.

Each function takes a tidy DataFrame from :mod:`interp_steer.analysis` and returns a Figure; save with
``fig.savefig(path, dpi=…)``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from interp_steer.errors import ConfigError  # noqa: E402

_POSITION_COMPONENTS = ("resid_pre", "attn_out", "mlp_out")


def _grid(frame: pd.DataFrame, component: str) -> tuple[np.ndarray, list[str], list[int]]:
    """layers × columns matrix of shares for one component (columns: positions, or heads)."""
    part = frame[frame["component"] == component]
    column = "head" if component == "head" else "position"
    table = part.pivot_table(index="layer", columns=column, values="share", aggfunc="first").sort_index()
    if component == "head":
        labels = [f"H{int(h)}" for h in table.columns]
    else:
        tokens = part.drop_duplicates("position").set_index("position")["token"]
        labels = [f"{tokens[p]!r} ({p})" for p in table.columns]
    return table.to_numpy(dtype=float), labels, [int(x) for x in table.index]


def plot_patching(frame: pd.DataFrame, *, roles: str = "role", title: str | None = None) -> Figure:
    """Heatmaps of the share of the steering effect per site: one row per sample (or ``role``), one column per
    component (resid_pre / attn_out / mlp_out by layer × position, heads by layer × head)."""
    needed = {"component", "layer", "position", "head", "share", "token"}
    if not needed <= set(frame.columns):
        raise ConfigError(f"plot_patching needs columns {sorted(needed)}; got {list(frame.columns)}")
    key = roles if roles in frame.columns else "sample_id"
    samples = list(dict.fromkeys(frame[key]))
    components = [c for c in (*_POSITION_COMPONENTS, "head") if (frame["component"] == c).any()]
    if not components:
        raise ConfigError("plot_patching: the table has no patching rows")
    finite = frame["share"].abs().replace(np.inf, np.nan)
    vmax = max(float(np.nanmax(finite.to_numpy(dtype=float))) if finite.notna().any() else 1.0, 1e-6)
    n_layers = frame["layer"].nunique()
    fig, axes = plt.subplots(len(samples), len(components), squeeze=False,
                             figsize=(3.0 * len(components) + 1.5, 0.18 * n_layers * len(samples) + 1.8 * len(samples)))
    image = None
    for r, sample in enumerate(samples):
        part = frame[frame[key] == sample]
        for c, component in enumerate(components):
            ax = axes[r][c]
            grid, labels, layers = _grid(part, component)
            image = ax.imshow(grid, aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
            ax.set_xticks(range(len(labels)))
            ax.set_xticklabels(labels, rotation=60 if component != "head" else 0, ha="right" if component != "head" else "center", fontsize=7)
            step = max(1, len(layers) // 10)
            ax.set_yticks(range(0, len(layers), step))
            ax.set_yticklabels(layers[::step], fontsize=7)
            if c == 0:
                first = part.iloc[0]
                total = first["metric_steered"] - first["metric_clean"]
                ax.set_ylabel(f"{sample}\nlayer (Δmetric {total:+.3g})", fontsize=8)
            ax.set_title(component if component != "head" else "heads (attn.hook_z)", fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="share of steering effect")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_logit_lens(frame: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Answer logit diff per layer, clean (dashed) vs steered (solid), one colour per sample
    (a ``role`` column, if present, labels the samples)."""
    if not {"layer", "condition", "logit_diff"} <= set(frame.columns):
        raise ConfigError(f"plot_logit_lens needs layer, condition, logit_diff; got {list(frame.columns)}")
    key = "role" if "role" in frame.columns else "sample_id"
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for index, (sample, part) in enumerate(frame.groupby(key, sort=False)):
        colour = f"C{index}"
        for condition, style in (("clean", "--"), ("steered", "-")):
            rows = part[part["condition"] == condition].sort_values("layer")
            ax.plot(rows["layer"], rows["logit_diff"], style, color=colour, label=f"{sample} {condition}")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel("layer (resid_post, read through ln_final + W_U)")
    ax.set_ylabel("logit(pos) − logit(neg)")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
