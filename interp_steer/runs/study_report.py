"""The study's ``report.md``: interval tables (tables before plots), every figure, and a 95% CI with n beside every
headline number (``tables/headline.csv`` holds them all). Called by :func:`interp_steer.runs.study.run_study`
once every stage has finished; everything here is a function of the stages' finished tables.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd

from interp_steer.analysis.markdown_tables import markdown_table
from interp_steer.errors import ConfigError
from interp_steer.runs.files import write_bytes_atomic, write_text_atomic
from interp_steer.runs.study import (
    FRAMING_LABELS,
    HEADLINE_COLUMNS,
    PROPENSITY_UNITS,
    SLOPE_UNITS,
    StudyConfig,
    compute_totals,
    format_ci,
    headline_markdown,
    headline_rows,
    read_unit_propensities,
    save_table,
    select_datasets,
    unsteered_table,
)

STEER_UNITS = {"anti_steerable_fraction": "share of samples"}
BASELINE_UNITS = {"matching_rate": "share of samples", "a_rate": "share of samples", "mean_propensity": "logits",
                  "mean_a_minus_b": "logits"}
SPURIOUS_UNITS = {"var_total": "logits² per unit²", "var_is_A": "logits² per unit²", "var_is_Yes": "logits² per unit²",
                  "var_unexplained": "logits² per unit²", "r2_is_A": "share of variance",
                  "r2_is_A_is_Yes": "share of variance"}


class _Figures:
    """Saves figures under ``out/figures`` and remembers them in report order."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.files: list[str] = []

    def save(self, figure, name: str) -> str:
        import matplotlib.pyplot as plt

        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(figure)
        rel = f"figures/{name}.png"
        write_bytes_atomic(buffer.getvalue(), self.out_dir / rel)
        self.files.append(rel)
        return rel


def _figure_line(rel: str, caption: str) -> list[str]:
    return [f"![{caption}]({rel})", "", f"*{caption}*", ""]


def _units_of(framing: str) -> dict[str, str]:
    return {**{s: SLOPE_UNITS[framing] for s in ("mean_slope", "median_slope")}, **STEER_UNITS}


def write_study_report(out_dir: Path, config: StudyConfig, scan_config, steer_config, profile: pd.DataFrame,
                       choice: dict[str, Any], steer_tables: dict[str, pd.DataFrame], id_per_sample: pd.DataFrame,
                       seconds: dict[str, float]) -> tuple[pd.DataFrame, list[str]]:
    """Write ``out/tables``, ``out/figures`` and ``out/report.md``; returns ``(headline table, figure files)``."""
    from interp_steer.evaluation import (
        ab_baseline,
        correlation_ci,
        generalisation_correlation,
        relative_steerability_table,
        spurious_cis,
        steerability_cis,
    )
    from interp_steer.viz.study_plots import (
        placeholder_figure,
        plot_id_vs_ood_by_variant,
        plot_propensity_curves_ci,
        plot_steerability_violins,
    )
    from interp_steer.viz.uncertainty_plots import (
        plot_intervals,
        plot_layer_profile,
        plot_relative_vs_propensity_difference,
        plot_spurious_variance_split,
    )

    nb, sd = config.n_boot, config.seed
    figures = _Figures(out_dir)
    headline: list[pd.DataFrame] = []
    lines: list[str] = [f"# Steering reliability study (Tan et al. 2024) on `{config.model}` — preset `{config.preset}`", ""]
    per_sample, summary = steer_tables["per_sample"], steer_tables["summary"]
    framings = [f for f in ("ab", "free_text") if f in set(per_sample["framing"])]
    steer_dir = out_dir / "steerability"
    n_units = per_sample.groupby("framing")["dataset"].nunique()
    lines += [
        "CAA vectors (mean residual difference of the positive and negative completions) at one layer, added × the "
        f"multiplier from the last prompt token on; multipliers {config.multipliers}. Propensity: A/B = logit of the "
        "behaviour-matching answer letter − logit of the other (**logits**); free text = log p(positive completion) − "
        "log p(negative completion) (**nats**). Steerability = least-squares slope of a sample's propensity on the "
        "multiplier (units per unit multiplier); anti-steerable = slope < 0. Intervals: 95% bootstrap (percentile); "
        "per dataset the samples are resampled, across datasets the datasets and the samples within them "
        f"(two-level), {config.n_boot} resamples, seed {config.seed}. A/B and free-text numbers are never pooled "
        "(different units).",
        "",
        f"Coverage: {', '.join(f'{int(n)} datasets in {f}' for f, n in n_units.items())}; "
        f"{config.n_train} train / {config.n_test} test pairs per dataset (all available where fewer), from the "
        f"stratified split (test fraction {config.test_fraction}, seed {config.seed}).",
        "",
    ]

    # ---- layer choice
    headline.append(pd.DataFrame([{"section": "layer", "group": f"chosen layer {choice['layer']} ({choice['framing']})",
                                   "statistic": "mean_slope", "units": choice["units"], "estimate": choice["estimate"],
                                   "ci_low": choice["ci_low"], "ci_high": choice["ci_high"],
                                   "n_samples": choice["n_samples"], "n_datasets": choice["n_datasets"],
                                   "method": "cluster-percentile"}], columns=HEADLINE_COLUMNS))
    save_table(profile, out_dir, "layer_profile")
    lines += ["## 1. Layer choice", "",
              f"Scan: {len(scan_config.datasets)} dataset specs × {len(scan_config.layers)} layers "
              f"({scan_config.layers[0]}…{scan_config.layers[-1]}), multipliers {scan_config.multipliers}; CAA from "
              f"the first {config.scan_n_train} pairs of each dataset's *train* part, scored on the next "
              f"{config.scan_n_test} train pairs, so no sample the evaluation scores (test part) helps choose the "
              f"layer. Rule: {choice['rule']}.", ""]
    lines += headline_markdown(headline[-1], "layer") + [""]
    for framing in sorted(set(profile["framing"])):
        fig = plot_layer_profile(profile[profile["framing"] == framing], units=SLOPE_UNITS[framing],
                                 chosen=choice["layer"],
                                 title=f"Layer profile, {FRAMING_LABELS[framing]}: mean steerability across scan "
                                       f"datasets with 95% CI")
        rel = figures.save(fig, f"layer_profile_{framing}")
        lines += _figure_line(rel, f"Layer profile ({framing}): mean over scan datasets of the per-dataset mean slope "
                                   f"({SLOPE_UNITS[framing]}), 95% two-level bootstrap band; dashed: chosen layer")

    # ---- steerability
    cis = steerability_cis(per_sample, by=("source", "framing"), n_boot=nb, seed=sd)
    overall = steerability_cis(per_sample, by=("framing",), levels=("across_datasets",), n_boot=nb, seed=sd) \
        if per_sample.groupby("framing")["dataset"].nunique().max() > 1 else pd.DataFrame()
    save_table(pd.concat([cis, overall.assign(source="all")], ignore_index=True), out_dir, "steerability_cis")
    save_table(summary, out_dir, "steerability_summary")
    across = cis[cis["level"] == "across_datasets"]
    for row in across[["source", "framing"]].drop_duplicates().itertuples():
        part = across[(across["source"] == row.source) & (across["framing"] == row.framing)]
        headline.append(headline_rows(part, "steerability", f"{row.source} / {row.framing}", _units_of(row.framing)))
    for framing in (overall["framing"].unique() if not overall.empty else []):
        if across[across["framing"] == framing]["source"].nunique() > 1:
            headline.append(headline_rows(overall[overall["framing"] == framing], "steerability",
                                          f"all sources / {framing}", _units_of(framing)))
    lines += ["## 2. Steerability across datasets", "",
              f"Layer {choice['layer']}. Across-dataset statistics count each dataset once (mean over datasets of "
              "the dataset mean slope; median over datasets of the dataset median; mean over datasets of the "
              "anti-steerable fraction).", ""]
    lines += headline_markdown(pd.concat(headline), "steerability") + [""]
    mostly_anti = cis[(cis["level"] == "dataset") & (cis["statistic"] == "anti_steerable_fraction")]
    for framing in framings:
        part = mostly_anti[mostly_anti["framing"] == framing]
        lines.append(f"- {framing}: {int((part['ci_low'] > 0.5).sum())} of {len(part)} datasets have an "
                     "anti-steerable fraction whose 95% CI lies above 50%; "
                     f"{int((part['ci_high'] < 0.5).sum())} lie below 50%.")
    lines.append("")
    propensities = {f: read_unit_propensities(steer_dir, steer_config, f) for f in framings}
    for framing in framings:
        rows = cis[(cis["level"] == "dataset") & (cis["framing"] == framing)]
        part_summary = summary[summary["framing"] == framing]
        selection = select_datasets(part_summary, config.selection_size)
        units = SLOPE_UNITS[framing]
        lines += [f"### {FRAMING_LABELS[framing]}", "",
                  f"Selection for the violins and curves: {len(selection)} of {len(part_summary)} datasets, evenly "
                  "spaced over the rank of the mean slope (lowest and highest included): "
                  + ", ".join(f"`{d}`" for d in selection) + ".", ""]
        fig = plot_steerability_violins(per_sample[per_sample["framing"] == framing], rows, datasets=selection,
                                        units=units, title=f"Per-sample steerability, {FRAMING_LABELS[framing]}, "
                                        f"layer {choice['layer']} ({len(selection)} datasets)")
        lines += _figure_line(figures.save(fig, f"violins_{framing}"),
                              f"{framing}: per-sample steerability ({units}) and anti-steerable share with 95% CI, "
                              f"n = {int(part_summary.set_index('dataset').loc[selection, 'n_samples'].sum())} samples")
        for statistic, reference, ref_label, stat_units in (
                ("mean_slope", 0.0, "slope 0", units),
                ("anti_steerable_fraction", 0.5, "50% anti-steerable", "share of samples")):
            fig = plot_intervals(rows, statistic=statistic, units=stat_units, reference=reference,
                                 reference_label=ref_label, max_rows=40,
                                 title=f"{statistic} per dataset, {FRAMING_LABELS[framing]} ({len(rows) // 3} "
                                       f"datasets, 95% CIs)")
            lines += _figure_line(figures.save(fig, f"summary_{statistic}_{framing}"),
                                  f"All {framing} datasets: {statistic} ({stat_units}) with 95% CI (samples resampled)")
        props = propensities[framing]
        fig = plot_propensity_curves_ci(props[props["dataset"].isin(selection)], units=PROPENSITY_UNITS[framing],
                                        datasets=selection,
                                        title=f"Propensity vs multiplier, {FRAMING_LABELS[framing]}, layer "
                                              f"{choice['layer']} (bands: 95% CI of the mean)")
        lines += _figure_line(figures.save(fig, f"propensity_curves_{framing}"),
                              f"{framing}: mean propensity ({PROPENSITY_UNITS[framing]}) vs multiplier per dataset")
    paired = summary[summary["source"] == "persona"].assign(
        behaviour=lambda f: f["dataset"].str.replace("@free_text", "", regex=False))
    paired = paired.pivot_table(index="behaviour", columns="framing", values="mean_slope").dropna()
    if {"ab", "free_text"} <= set(paired.columns) and len(paired) >= 4:
        res = correlation_ci(paired["ab"], paired["free_text"], method="spearman", n_boot=nb, seed=sd)
        table = res.to_frame()
        headline.append(headline_rows(table, "framings", "persona sets, A/B vs free-text mean slope", "rank correlation"))
        lines += ["Do the persona sets that steer in one framing steer in the other (one point per dataset, "
                  "i.i.d. bootstrap over datasets)?", ""] + headline_markdown(headline[-1], "framings") + [""]

    # ---- A/B baseline and spurious factors
    if "ab" in framings:
        props = propensities["ab"]
        baseline = ab_baseline(props, by=["dataset"], levels=("dataset",), n_boot=nb, seed=sd)
        baseline["source"] = baseline["dataset"].str.split(":").str[0]
        frames = [baseline]
        lines += ["## 3. The unsteered A/B baseline", "",
                  "At multiplier 0: `matching_rate` = share of samples where the model prefers the behaviour-matching "
                  "letter; `a_rate` = share where it prefers (A), whatever (A) means (Wilson intervals per dataset). "
                  "An `a_rate` near 1 with a `matching_rate` near the share of samples whose matching answer is (A) "
                  "means the model answers (A) regardless: then about half the samples sit at a floor or ceiling and "
                  "\"50% anti-steerable\" says more about the letter preference than about the vector.", ""]
        for source, group in [("all sources", props)] + list(props.groupby(props["dataset"].str.split(":").str[0])):
            if group["dataset"].nunique() < 2:
                continue
            across_rows = ab_baseline(group, by=["dataset"], levels=("across_datasets",), n_boot=nb, seed=sd)
            frames.append(across_rows.assign(source=source))
            headline.append(headline_rows(across_rows, "baseline", f"{source} / ab", BASELINE_UNITS))
        save_table(pd.concat(frames, ignore_index=True), out_dir, "ab_baseline")
        lines += headline_markdown(pd.concat(headline), "baseline") + [""]
        fig = plot_intervals(baseline, statistic="a_rate", units="share of samples preferring (A)", reference=0.5,
                             reference_label="no letter preference (50%)",
                             title=f"Unsteered preference for answer (A), {baseline['dataset'].nunique()} A/B "
                                   "datasets (95% Wilson CIs)")
        lines += _figure_line(figures.save(fig, "ab_baseline_a_rate"),
                              "Unsteered share of samples on which the model prefers (A), per A/B dataset, 95% CI")
        ab_samples = per_sample[per_sample["kind"] == "ab"]
        # is_Yes read back as a nullable boolean with NA (xrisk rows): as float, NaN where unknown, for spurious_cis
        ab_samples = ab_samples.assign(is_Yes=ab_samples["is_Yes"].astype("Float64").astype(float))
        sp = spurious_cis(ab_samples, n_boot=nb, seed=sd)
        save_table(sp, out_dir, "spurious_cis")
        lines += ["## 4. Spurious factors (A/B)", "",
                  "The sample variance of per-sample steerability split by sequential least squares into the part "
                  "explained by `is_A` (the matching answer is (A)), the further part explained by `is_Yes` (the "
                  "matching answer means Yes), and the unexplained rest (logits² per unit multiplier²).", ""]
        sp_across = sp[sp["level"] == "across_datasets"]
        if not sp_across.empty:
            headline.append(headline_rows(sp_across, "spurious", "A/B datasets (mean over datasets)", SPURIOUS_UNITS))
            lines += headline_markdown(headline[-1], "spurious") + [""]
        if "spurious" in steer_tables:
            fig = plot_spurious_variance_split(steer_tables["spurious"], units="logits per unit multiplier",
                                               max_rows=40)
            lines += _figure_line(figures.save(fig, "spurious_variance"),
                                  "Variance of per-sample A/B steerability explained by is_A, is_Yes and unexplained, "
                                  "per dataset (point estimates; intervals in tables/spurious_cis.csv)")

    # ---- ID / OOD
    framing = config.id_ood_framing
    unsteered = unsteered_table(id_per_sample)
    grid = relative_steerability_table(id_per_sample, unsteered, n_boot=nb, seed=sd)
    per_dataset, rel_across = grid["per_dataset"], grid["across_datasets"]
    save_table(per_dataset, out_dir, "id_ood_per_dataset")
    save_table(rel_across, out_dir, "id_ood_across_datasets")
    cutoff = float(per_dataset["cutoff"].iloc[0])
    lines += ["## 5. In- vs out-of-distribution prompts (5 × 5 variant grid)", "",
              f"{id_per_sample['dataset'].nunique()} persona sets in the {framing} framing, "
              f"{config.id_ood_n_train} train / {config.id_ood_n_test} test pairs, multipliers "
              f"{config.id_ood_multipliers}. A CAA vector per variant (BASE, SYS_POS, SYS_NEG, USER_POS, USER_NEG), each "
              "rescaled to the BASE vector's norm, evaluated on every variant (all 25 cells, including "
              "SYS_POS→USER_NEG and SYS_NEG→USER_POS). Relative steerability of X on Y = slope(X→Y) / |slope(Y→Y)|, "
              f"reported only where |slope(Y→Y)| > {cutoff:g} {SLOPE_UNITS[framing]} (the own-slope cutoff in this "
              "framing's units). Propensity difference = mean unsteered propensity on Y − on X "
              f"({PROPENSITY_UNITS[framing]}).", ""]
    if not rel_across.empty:
        base_rows = rel_across[rel_across["train_variant"] == "BASE"]
        for row in base_rows[["variant"]].drop_duplicates().itertuples():
            wanted = ["slope"] if row.variant == "BASE" else ["slope", "relative_steerability"]  # BASE→BASE: 1 by definition
            part = base_rows[(base_rows["variant"] == row.variant) & base_rows["statistic"].isin(wanted)]
            cell_units = {"slope": SLOPE_UNITS[framing], "relative_steerability": "ratio"}
            group = "ID: BASE→BASE" if row.variant == "BASE" else f"OOD: BASE→{row.variant}"
            headline.append(headline_rows(part.dropna(subset=["estimate"]), "id_ood", group, cell_units))
        lines += headline_markdown(pd.concat(headline), "id_ood") + [""]
        matrix = rel_across[rel_across["statistic"] == "relative_steerability"].pivot_table(
            index="train_variant", columns="variant", values="estimate")
        lines += ["Relative steerability (mean over datasets passing the cutoff; rows = vector's variant X, columns = "
                  "prompts' variant Y; intervals in tables/id_ood_across_datasets.csv):", "",
                  markdown_table(matrix.reset_index(), digits=2), ""]
    fig = plot_id_vs_ood_by_variant(per_dataset, units=SLOPE_UNITS[framing],
                                    title=f"ID vs OOD steerability, {FRAMING_LABELS[framing]}, layer {choice['layer']}")
    lines += _figure_line(figures.save(fig, "id_vs_ood"), "ID (BASE→BASE) vs OOD (BASE→variant) mean slope per "
                          f"dataset ({SLOPE_UNITS[framing]}), 95% CIs, coloured by the prompts' variant")
    usable = per_dataset[per_dataset["train_variant"] != per_dataset["variant"]].dropna(
        subset=["relative", "propensity_difference"])
    correlation = pd.DataFrame()
    if usable["dataset"].nunique() < 3:
        lines += [f"Generalisation correlation not reported: the off-diagonal points passing the cutoff come from "
                  f"{usable['dataset'].nunique()} dataset(s); a dataset-level interval needs at least 3.", ""]
    else:
        try:
            correlation = generalisation_correlation(per_dataset, n_boot=nb, seed=sd)
        except ConfigError as exc:
            lines += [f"Generalisation correlation not computed: {exc}.", ""]
    if not correlation.empty:
        save_table(correlation, out_dir, "generalisation_correlation")
        headline.append(headline_rows(correlation, "generalisation", "relative steerability vs propensity difference",
                                      "correlation"))
        lines += ["Correlation of relative steerability with the unsteered-propensity difference over the off-diagonal "
                  "(dataset, X, Y) points; datasets are resampled with all their points, so repeated points of one "
                  "dataset do not count as independent (`_of_dataset_means`: one point per dataset).", ""]
        lines += headline_markdown(headline[-1], "generalisation") + [""]
    if usable.empty:
        fig = placeholder_figure("Relative steerability vs unsteered propensity difference",
                                 f"No (dataset, X ≠ Y) cell passes the own-slope cutoff |slope(Y→Y)| > {cutoff:g}.")
    else:
        corr = correlation[correlation["statistic"] == "pearson_r"] if not correlation.empty else None
        fig = plot_relative_vs_propensity_difference(per_dataset, correlation=corr,
                                                     propensity_units=PROPENSITY_UNITS[framing])
    lines += _figure_line(figures.save(fig, "relative_vs_propensity_difference"),
                          "Relative steerability vs unsteered propensity difference (test − train variant, "
                          f"{PROPENSITY_UNITS[framing]}), one point per (dataset, X ≠ Y), 95% CIs")

    # ---- closing: the headline table, timings
    table = pd.concat(headline, ignore_index=True)
    save_table(table, out_dir, "headline")
    lines += ["## Headline numbers", "", "Every number above, with its 95% CI and n (`tables/headline.csv`):", "",
              markdown_table(table.assign(ci=[format_ci(e, lo, hi) for e, lo, hi in
                                              zip(table["estimate"], table["ci_low"], table["ci_high"])])
                             [["section", "group", "statistic", "ci", "units", "n_samples", "n_datasets"]]), ""]
    totals = compute_totals(out_dir / "timings.jsonl")
    save_table(totals, out_dir, "compute")
    lines += ["## Compute", "",
              "Wall time of this invocation per stage (finished units of earlier invocations are reused, not "
              "recomputed): " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()) + ".", "",
              "Summed over every invocation (`timings.jsonl`: wall seconds of the driving process per finished "
              "unit; CPU seconds of the process that computed the unit where the runner recorded them in "
              "`<stage>/unit_timings.jsonl`, counted in `cpu_units`, else the driving process's, which misses the "
              "CPU a Ray worker spent):", "",
              markdown_table(totals.assign(wall_h=totals["wall_s"] / 3600, cpu_h=totals["cpu_s"] / 3600)), "",
              f"Settings: `{out_dir.name}/config.json`; sub-runs in `scan/`, `steerability/`, `id_ood/` (each with "
              "its config.json and run_report.json).", ""]
    write_text_atomic("\n".join(lines), out_dir / "report.md")
    return table, figures.files
