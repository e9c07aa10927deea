"""The study report's ID/OOD section: the 5 × 5 variant grid with the own-slope cutoff relative to each dataset's ID
slope, the across-dataset median (no single near-zero dataset can drag it) beside the mean, a 5 × 5 heatmap, and
relative steerability against the per-example absolute unsteered-propensity difference (Tan et al.'s statistic)."""

from __future__ import annotations

import pandas as pd

from interp_steer.analysis.markdown_tables import markdown_table
from interp_steer.errors import ConfigError
from interp_steer.runs.study_config import (
    FRAMING_LABELS,
    PROPENSITY_UNITS,
    SLOPE_UNITS,
    headline_rows,
    save_table,
    unsteered_table,
)

RELATIVE_CUTOFF = 0.25
"""A cell (X → Y) of a dataset counts only where ``|slope(Y→Y)| > RELATIVE_CUTOFF × |slope(BASE→BASE)|`` of that
dataset: the paper's 0.25 is in logits of an A/B letter difference, not in summed nats, so the rule here is relative
to the dataset's own ID slope and means the same in either unit."""


def id_ood_section(ctx, id_per_sample: pd.DataFrame) -> None:
    """§7: the ID/OOD grid, its heatmap, and the generalisation correlation with the per-example |Δ|."""
    from interp_steer.evaluation import generalisation_correlation, relative_steerability_table
    from interp_steer.viz.study_plots import placeholder_figure, plot_id_vs_ood_by_variant, plot_variant_heatmap
    from interp_steer.viz.uncertainty_plots import plot_relative_vs_propensity_difference

    config, nb, sd = ctx.config, ctx.config.n_boot, ctx.config.seed
    framing = config.id_ood_framing
    grid = relative_steerability_table(id_per_sample, unsteered_table(id_per_sample), relative_cutoff=RELATIVE_CUTOFF,
                                       n_boot=nb, seed=sd)
    per_dataset, across = grid["per_dataset"], grid["across_datasets"]
    save_table(per_dataset, ctx.out_dir, "id_ood_per_dataset")
    save_table(across, ctx.out_dir, "id_ood_across_datasets")
    ident = per_dataset[(per_dataset["train_variant"] == "BASE") & (per_dataset["variant"] == "BASE")]
    near_zero = ident[(ident["slope_ci_low"] <= 0) & (ident["slope_ci_high"] >= 0)]["dataset"].tolist()
    ctx.lines += [
        "## 7. In- vs out-of-distribution prompts (5 × 5 variant grid)", "",
        f"{id_per_sample['dataset'].nunique()} persona sets in the {framing} framing, {config.id_ood_n_train} train / "
        f"{config.id_ood_n_test} test pairs, multipliers {config.id_ood_multipliers}. A CAA vector per variant (BASE, "
        "SYS_POS, SYS_NEG, USER_POS, USER_NEG), each rescaled to the BASE vector's norm, evaluated on every variant "
        "(all 25 cells). Relative steerability of X on Y = slope(X→Y) / |slope(Y→Y)|, counted only where "
        f"|slope(Y→Y)| > {RELATIVE_CUTOFF:g} × |slope(BASE→BASE)| of the same dataset (a cutoff relative to the "
        "dataset's ID slope: the paper's 0.25 is in logits, these slopes are in summed nats). Across datasets the "
        "**median** is the headline (one dataset with a near-zero own slope cannot drag it; the mean is in "
        "`tables/id_ood_across_datasets.csv`). Propensity difference = Tan et al.'s per-example absolute difference "
        f"mean_i |u_Y(i) − u_X(i)| of the unsteered propensities ({PROPENSITY_UNITS[framing]}).", "",
        f"Datasets whose ID slope (BASE→BASE) 95% CI includes 0: {len(near_zero)}"
        + (": " + ", ".join(f"`{d}`" for d in near_zero) if near_zero else "") + ".", ""]
    if not across.empty:
        base = across[across["train_variant"] == "BASE"]
        units = {"slope": SLOPE_UNITS[framing], "relative_steerability_median": "ratio",
                 "abs_propensity_difference": PROPENSITY_UNITS[framing]}
        for variant in [v for v in base["variant"].drop_duplicates()]:
            wanted = ["slope"] if variant == "BASE" else ["slope", "relative_steerability_median",
                                                          "abs_propensity_difference"]
            part = base[(base["variant"] == variant) & base["statistic"].isin(wanted)]
            group = "ID: BASE→BASE" if variant == "BASE" else f"OOD: BASE→{variant}"
            ctx.add_headline(headline_rows(part.dropna(subset=["estimate"]), "id_ood", group, units), "id_ood")
        matrix = across[across["statistic"] == "relative_steerability_median"].pivot_table(
            index="train_variant", columns="variant", values="estimate")
        ctx.lines += ["Median relative steerability over the datasets passing the cutoff (rows = vector's variant X, "
                      "columns = prompts' variant Y; intervals and n in the heatmap and the table):", "",
                      markdown_table(matrix.reset_index(), digits=2), ""]
        ctx.figure(plot_variant_heatmap(across, statistic="relative_steerability_median"), "id_ood_heatmap",
                   "5 × 5 grid: median over datasets of the relative steerability X → Y with 95% CI and the number "
                   "of datasets passing the cutoff per cell")
    fig = plot_id_vs_ood_by_variant(per_dataset, units=SLOPE_UNITS[framing],
                                    title=f"ID vs OOD steerability, {FRAMING_LABELS[framing]}, layer {ctx.layer}")
    ctx.figure(fig, "id_vs_ood", "ID (BASE→BASE) vs OOD (BASE→variant) mean slope per dataset "
                                 f"({SLOPE_UNITS[framing]}), 95% CIs, coloured by the prompts' variant")
    _generalisation(ctx, per_dataset, generalisation_correlation, plot_relative_vs_propensity_difference,
                    placeholder_figure, framing)


def _generalisation(ctx, per_dataset: pd.DataFrame, correlate, plot, placeholder, framing: str) -> None:
    usable = per_dataset[per_dataset["train_variant"] != per_dataset["variant"]].dropna(
        subset=["relative", "abs_propensity_difference"])
    correlation = pd.DataFrame()
    if usable["dataset"].nunique() < 3:
        ctx.lines += [f"Generalisation correlation not reported: the off-diagonal points passing the cutoff come from "
                      f"{usable['dataset'].nunique()} dataset(s); a dataset-level interval needs at least 3.", ""]
    else:
        try:
            correlation = correlate(per_dataset, n_boot=ctx.config.n_boot, seed=ctx.config.seed)
        except ConfigError as exc:
            ctx.lines += [f"Generalisation correlation not computed: {exc}.", ""]
    if not correlation.empty:
        save_table(correlation, ctx.out_dir, "generalisation_correlation")
        ctx.lines += ["Correlation of relative steerability with the per-example absolute unsteered-propensity "
                      "difference over the off-diagonal (dataset, X, Y) points; datasets are resampled with all their "
                      "points (n_samples = points). No correlation of dataset means is reported: with the signed "
                      "difference the mean over a dataset's off-diagonal cells is 0 by construction.", ""]
        ctx.add_headline(headline_rows(correlation, "generalisation",
                                       "relative steerability vs per-example |propensity difference|", "correlation"),
                         "generalisation")
    if usable.empty:
        fig = placeholder("Relative steerability vs unsteered propensity difference",
                          "No (dataset, X ≠ Y) cell passes the own-slope cutoff.")
    else:
        corr = correlation[correlation["statistic"] == "pearson_r"] if not correlation.empty else None
        fig = plot(per_dataset, correlation=corr, propensity_units=PROPENSITY_UNITS[framing])
    ctx.figure(fig, "relative_vs_propensity_difference",
               "Relative steerability vs the mean per-example |unsteered propensity difference| (test vs train "
               f"variant, {PROPENSITY_UNITS[framing]}), one point per (dataset, X ≠ Y), 95% CIs; y axis clipped to "
               "the range −0.5 to 2 with points beyond drawn at the edge")
