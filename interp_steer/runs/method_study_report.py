"""The method study's report (issue 28): takes the tables of :func:`~interp_steer.runs.method_study.method_tables`
and a description of the run, writes every table as CSV, two method × dataset heat maps and ``report.md``."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from interp_steer.report.format import format_ci


def _ci(frame: pd.DataFrame, estimate: str, low: str, high: str) -> pd.Series:
    if frame.empty or estimate not in frame.columns:
        return pd.Series(dtype=object)
    lows = frame[low] if low in frame.columns else pd.Series(np.nan, index=frame.index)
    highs = frame[high] if high in frame.columns else pd.Series(np.nan, index=frame.index)
    return pd.Series([format_ci(e, lo, hi) for e, lo, hi in zip(frame[estimate], lows, highs)], index=frame.index)


def _section(title: str, note: str, table: pd.DataFrame) -> list[str]:
    from interp_steer.analysis.markdown_tables import markdown_table

    if table.empty:
        return [f"## {title}", "", "No rows (that part was not run or has not finished).", ""]
    return [f"## {title}", "", note, "", markdown_table(table), ""]


def _heat_map(grid: pd.DataFrame, title: str, unit: str, subtitle: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2.0 + 1.1 * grid.shape[1], 1.4 + 0.5 * grid.shape[0]))
    values = grid.to_numpy(float)
    image = ax.imshow(values, aspect="auto", cmap="viridis")
    names = [str(c).replace("persona:", "").replace("@free_text", " (ft)") for c in grid.columns]
    ax.set_xticks(range(grid.shape[1]), [n if len(n) <= 30 else n[:28] + "…" for n in names], rotation=35,
                  ha="right", fontsize=8)
    ax.set_yticks(range(grid.shape[0]), list(grid.index), fontsize=8)
    middle = np.nanmean(values) if np.isfinite(values).any() else 0.0
    for (i, j), value in np.ndenumerate(values):
        label = "not run" if np.isnan(value) else f"{value:.2g}"
        ax.text(j, i, label, ha="center", va="center", fontsize=7, color="white" if value < middle else "black")
    fig.colorbar(image, ax=ax, label=unit)
    ax.set_title(f"{title}\n{subtitle}", fontsize=9)
    ax.set_xlabel("dataset ((ft): persona set in free text)" if any("@free_text" in str(c) for c in grid.columns)
                  else "dataset")
    ax.set_ylabel("method")
    fig.tight_layout()
    return fig


def _answer(correlation: pd.DataFrame, variance: pd.DataFrame) -> str:
    """The "dataset or method?" sentence, no stronger than the intervals."""
    if variance.empty:
        return "Too few datasets (< 3 with CAA and another method) to answer."
    share = variance.set_index("source")
    d, m = share.loc["dataset"], share.loc["method"]
    text = (f"Dataset share of the anti-steerable fraction's variance {format_ci(d.share, d.ci_low, d.ci_high)}, "
            f"method share {format_ci(m.share, m.ci_low, m.ci_high)} (n = {int(d.n_datasets)} datasets). ")
    if d.ci_low > m.ci_high:
        text += "The dataset explains more of it than the method (the intervals do not overlap)."
    elif m.ci_low > d.ci_high:
        text += "The method explains more of it than the dataset (the intervals do not overlap)."
    else:
        text += "The intervals overlap: these data do not say whether dataset or method matters more."
    if not correlation.empty:
        positive = correlation[correlation["ci_low"] > 0]["method"].tolist()
        text += (f" Rank correlation with CAA across datasets excludes 0 for {', '.join(positive) or 'no method'} "
                 f"of {len(correlation)}.")
    return text


def write_method_report(tables: Mapping[str, pd.DataFrame], report_dir: str | Path, run: Mapping) -> Path:
    """``report_dir``: every table as CSV, heat maps of the anti-steerable fraction and the mean slope (method ×
    dataset) and ``report.md``. ``run``: what was run (model, layer, multipliers, reference_multiplier,
    kl_multipliers, n_neutral, n_test, …; shown in the header)."""
    from interp_steer.viz.plots import save_figure

    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(report_dir / f"{name}.csv", index=False)
    m_ref = run.get("reference_multiplier", 1.0)
    lines = [f"# Method study: {run.get('model')}, layer {run.get('layer')}", "",
             f"Every vector rescaled to the norm of the CAA vector from the same train pairs (matched norm); "
             f"multipliers {run.get('multipliers')}; at most {run.get('n_test')} held-out pairs per dataset. Side "
             f"effects are compared at **matched shift**: per dataset, the multiplier m* at which a method's mean "
             f"fitted propensity shift equals CAA's at m = {m_ref:g} (m* = {m_ref:g} · CAA's mean slope / the "
             f"method's), neutral-corpus KL ({run.get('n_neutral')} passages, measured at {run.get('kl_multipliers')},"
             f" interpolated); the KL at matched norm (m = {m_ref:g}) is beside it. All intervals are 95%.", ""]
    summary = tables.get("summary", pd.DataFrame())
    if summary.empty:
        (report_dir / "report.md").write_text("\n".join(lines + ["No finished units yet."]) + "\n")
        return report_dir / "report.md"
    methods = list(dict.fromkeys(summary["method"]))
    for column, title, unit in (("anti_steerable_fraction", "Anti-steerable fraction", "share of held-out samples"),
                                ("mean_slope", "Mean steerability slope", "propensity per unit multiplier")):
        grid = summary.pivot(index="method", columns="spec", values=column).reindex(methods)
        subtitle = f"{run.get('model')}, layer {run.get('layer')}, every vector at the CAA norm"
        save_figure(_heat_map(grid, title, unit, subtitle), report_dir / f"heatmap_{column}.png")
        lines += [f"![{title} (method × dataset)](heatmap_{column}.png)", ""]
    lines += _report_tables(tables)
    (report_dir / "report.md").write_text("\n".join(lines) + "\n")
    return report_dir / "report.md"


def _report_tables(tables: Mapping[str, pd.DataFrame]) -> list[str]:
    empty = pd.DataFrame()
    summary = tables["summary"]
    lines = _section("Per method and dataset", "Mean slope: bootstrap CI over held-out samples; anti-steerable "
                     "fraction (slope < 0): Wilson CI.", summary.assign(
                         mean_slope=_ci(summary, "mean_slope", "mean_slope_ci_low", "mean_slope_ci_high"),
                         anti_steerable=_ci(summary, "anti_steerable_fraction", "anti_ci_low", "anti_ci_high"),
                     )[["spec", "method", "n_samples", "mean_slope", "anti_steerable"]])
    paired = tables.get("paired", empty)
    if not paired.empty:
        paired = paired.assign(slope_minus_caa=_ci(paired, "mean_slope_difference", "ci_low", "ci_high"))[
            ["spec", "method", "n_samples", "slope_minus_caa"]]
    lines += _section("Paired per-sample slope differences against CAA", "Same held-out samples; bootstrap CI of "
                      "the mean difference.", paired)
    matched = tables.get("matched_kl", empty)
    if not matched.empty:
        for col in ("kl_matched_shift", "kl_matched_shift_ci_low", "kl_matched_shift_ci_high",
                    "matched_multiplier_ci_low", "matched_multiplier_ci_high"):
            if col not in matched.columns:
                matched = matched.assign(**{col: np.nan})
        matched = matched.assign(
            m_star=_ci(matched, "matched_multiplier", "matched_multiplier_ci_low", "matched_multiplier_ci_high"),
            kl_at_m_star=_ci(matched, "kl_matched_shift", "kl_matched_shift_ci_low", "kl_matched_shift_ci_high"),
            kl_matched_norm=_ci(matched, "kl_matched_norm", "kl_matched_norm_ci_low", "kl_matched_norm_ci_high"),
        )[["spec", "method", "n_passages", "m_star", "kl_at_m_star", "kl_matched_norm", "status"]]
    lines += _section("Neutral-corpus KL at matched shift (nats per token)", "m*: paired bootstrap over held-out "
                      "samples; KL: bootstrap over passages at the point m* (m*'s own uncertainty is not carried).",
                      matched)
    contrast = tables.get("contrast", empty)
    if not contrast.empty:
        contrast = contrast.assign(contrast_ci=_ci(contrast, "contrast", "contrast_ci_low", "contrast_ci_high"),
                                   kl_ci=_ci(contrast, "kl", "kl_ci_low", "kl_ci_high"))[
            ["spec", "arm", "setting", "n_samples", "contrast_ci", "kl_ci"]]
    lines += _section("Methods beside the prompting baseline", "Contrast: mean per-sample propensity difference "
                      "between the positive and the negative setting (steering ±m_ref; persona prompts SYS_POS − "
                      "SYS_NEG), bootstrap CI; KL: neutral corpus, positive setting (nats per token).", contrast)
    ood = tables.get("ood", empty)
    if not ood.empty:
        ood = ood[ood["variant"] != "BASE"]
        ood = ood.assign(relative_ci=_ci(ood, "relative", "relative_ci_low", "relative_ci_high"))[
            ["dataset", "method", "variant", "n_samples", "own_slope", "relative_ci"]]
    lines += _section("ID→OOD relative steerability (BASE vector on each variant)", "slope(BASE→Y) / |slope(Y→Y)|"
                      " with a paired bootstrap over test samples; n/a where Y's own slope is below the cutoff.", ood)
    norms = tables.get("norms", empty)
    if not norms.empty:
        by = norms.groupby("method", sort=False)
        norms = pd.DataFrame({"n_datasets": by.size(), "own_norm_median": by["own_norm"].median(),
                              "ratio_to_caa_median": by["ratio"].median(), "ratio_min": by["ratio"].min(),
                              "ratio_max": by["ratio"].max()}).reset_index()
        norms = norms.assign(**{c: norms[c].map(lambda v: f"{v:.3g}") for c in
                                ("own_norm_median", "ratio_to_caa_median", "ratio_min", "ratio_max")})
    lines += _section("Vector norms before rescaling", "Each method's own vector norm (before it was rescaled to the "
                      "CAA norm of the same pairs) and its ratio to that norm, over datasets: median and range "
                      "(descriptive; per dataset in `norms.csv`). A ratio of 1 means the method sets its own scale to "
                      "CAA's (see its config).", norms)
    correlation, variance = tables.get("correlation", empty), tables.get("variance", empty)
    lines += ["## Dataset or method?", "", _answer(correlation, variance), ""]
    if not correlation.empty:
        lines += _section("Rank correlation across datasets with CAA (anti-steerable fraction)", "Spearman; "
                          "bootstrap over datasets.", correlation.assign(
                              spearman_ci=_ci(correlation, "spearman", "ci_low", "ci_high"))[
                              ["method", "n_datasets", "spearman_ci"]])
        lines += _section("Variance shares (two-way, method × dataset)", "Bootstrap over datasets.", variance.assign(
            share_ci=_ci(variance, "share", "ci_low", "ci_high"))[["source", "n_datasets", "methods", "share_ci"]])
    ranking = tables.get("ranking", empty)
    if not ranking.empty:
        ranking = ranking.assign(estimate_ci=_ci(ranking, "estimate", "ci_low", "ci_high"))[
            ["goal", "method", "comparison", "n_datasets", "estimate_ci", "verdict", "rank"]]
    lines += _section("Which method for which purpose", "Per purpose, the mean over datasets of the per-dataset "
                      "comparison with CAA (bootstrap CI over datasets). The verdict claims better / worse only "
                      "where the interval excludes no difference; rank orders point estimates and is not a claim.",
                      ranking)
    return lines
