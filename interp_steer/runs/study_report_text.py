"""The study report's steerability sections: steerability across datasets (summed and per-token side by side, the
sets whose CI includes 0, the all-dataset strips), and the free-text section (the sets near 50% anti-steerable,
the per-token propensity, completion length as the free-text spurious factor)."""

from __future__ import annotations

import pandas as pd

from interp_steer.runs.study_config import (
    FRAMING_LABELS,
    PER_TOKEN_SLOPE_UNITS,
    PROPENSITY_UNITS,
    SLOPE_UNITS,
    STEER_UNITS,
    format_ci,
    headline_rows,
    read_unit_propensities,
    save_table,
    select_datasets,
    units_of,
)
from interp_steer.runs.study_report_ab import UNINTERPRETABLE, wilson_row


def per_token_table(ctx) -> pd.DataFrame:
    """Per-sample steerability of the per-token free-text propensity (``slope`` in nats per token per unit
    multiplier), with ``source`` and ``framing``; empty without free-text datasets or lengths."""
    from interp_steer.evaluation.metrics import per_token_steerability

    if "free_text" not in ctx.framings or ctx.lengths.empty:
        return pd.DataFrame()
    props = read_unit_propensities(ctx.out_dir / "steerability", ctx.steer_config, "free_text")
    table = per_token_steerability(props, ctx.lengths)
    return table.assign(source=table["dataset"].str.split(":").str[0], framing="free_text")


def over_datasets(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of a correlation with one point per dataset: its n is the number of datasets."""
    return rows.assign(n_datasets=rows["n_samples"], method=rows["method"] + " over datasets")


def _prefix(ctx, framing: str) -> str:
    return UNINTERPRETABLE if framing == "ab" and not ctx.ab_interpretable else ""


def steerability_section(ctx) -> None:
    """§3: across-dataset steerability per (source, framing), per token beside the summed free-text numbers."""
    from interp_steer.evaluation import steerability_cis

    nb, sd = ctx.config.n_boot, ctx.config.seed
    per_sample, summary = ctx.per_sample, ctx.summary
    cis = steerability_cis(per_sample, by=("source", "framing"), n_boot=nb, seed=sd)
    overall = steerability_cis(per_sample, by=("framing",), levels=("across_datasets",), n_boot=nb, seed=sd) \
        if per_sample.groupby("framing")["dataset"].nunique().max() > 1 else pd.DataFrame()
    save_table(pd.concat([cis, overall.assign(source="all")], ignore_index=True), ctx.out_dir, "steerability_cis")
    save_table(summary, ctx.out_dir, "steerability_summary")
    ctx.per_token = per_token_table(ctx)
    token_cis = pd.DataFrame()
    if not ctx.per_token.empty:
        token_cis = steerability_cis(ctx.per_token, by=("source", "framing"), n_boot=nb, seed=sd)
        save_table(token_cis, ctx.out_dir, "steerability_cis_per_token")
        save_table(_token_summary(ctx.per_token), ctx.out_dir, "steerability_summary_per_token")
    ctx.lines += ["## 3. Steerability across datasets", "",
                  f"Layer {ctx.layer}. Across-dataset statistics count each dataset once (mean over datasets of the "
                  "dataset mean slope; median over datasets of the dataset median; mean over datasets of the "
                  "anti-steerable fraction). Free text: summed (nats) and per token (nats per token) side by side.", ""]
    across = cis[cis["level"] == "across_datasets"]
    for row in across[["source", "framing"]].drop_duplicates().itertuples():
        part = across[(across["source"] == row.source) & (across["framing"] == row.framing)]
        ctx.add_headline(headline_rows(part, "steerability", f"{row.source} / {row.framing}", units_of(row.framing)),
                         "steerability")
        token = token_cis[(token_cis["level"] == "across_datasets") & (token_cis["source"] == row.source)] \
            if row.framing == "free_text" and not token_cis.empty else pd.DataFrame()
        if not token.empty:
            units = {"mean_slope": PER_TOKEN_SLOPE_UNITS, "median_slope": PER_TOKEN_SLOPE_UNITS, **STEER_UNITS}
            ctx.add_headline(headline_rows(token, "steerability", f"{row.source} / free_text per token", units),
                             "steerability")
    for framing in (overall["framing"].unique() if not overall.empty else []):
        if across[across["framing"] == framing]["source"].nunique() > 1:
            ctx.add_headline(headline_rows(overall[overall["framing"] == framing], "steerability",
                                           f"all sources / {framing}", units_of(framing)), "steerability")
    _dataset_counts(ctx, cis, token_cis)
    for framing in ctx.framings:
        _framing_figures(ctx, framing, cis[(cis["level"] == "dataset") & (cis["framing"] == framing)], token_cis)
    _framings_correlation(ctx)


def _token_summary(per_token: pd.DataFrame) -> pd.DataFrame:
    from interp_steer.evaluation import summarize_steerability

    return summarize_steerability(per_token, by=["source", "framing", "dataset", "layer"])


def _dataset_counts(ctx, cis: pd.DataFrame, token_cis: pd.DataFrame) -> None:
    """Per framing: the datasets whose mean-slope CI includes 0, and the anti-steerable fraction CIs vs 50%."""
    tables = [("summed", cis)] + ([("per token", token_cis)] if not token_cis.empty else [])
    for label, table in tables:
        rows = table[table["level"] == "dataset"]
        for framing in ctx.framings:
            part = rows[rows["framing"] == framing]
            if part.empty:
                continue
            slope = part[part["statistic"] == "mean_slope"]
            zero = slope[(slope["ci_low"] <= 0) & (slope["ci_high"] >= 0)]
            anti = part[part["statistic"] == "anti_steerable_fraction"]
            names = ", ".join(f"`{d}`" for d in zero["dataset"]) if 0 < len(zero) <= 12 else ""
            ctx.lines.append(
                f"- {framing} ({label}): {len(slope) - len(zero)} of {len(slope)} datasets have a mean slope whose "
                f"95% CI excludes 0; **{len(zero)} include 0**{': ' + names if names else ''}. Anti-steerable "
                f"fraction: {int((anti['ci_low'] > 0.5).sum())} of {len(anti)} CIs lie above 50%, "
                f"{int((anti['ci_high'] < 0.5).sum())} below, {int(((anti['ci_low'] <= 0.5) & (anti['ci_high'] >= 0.5)).sum())} include 50%.")
    ctx.lines.append("")


def _framing_figures(ctx, framing: str, rows: pd.DataFrame, token_cis: pd.DataFrame) -> None:
    from interp_steer.viz.study_plots import plot_propensity_curves_ci, plot_steerability_violins
    from interp_steer.viz.uncertainty_plots import plot_intervals

    part_summary = ctx.summary[ctx.summary["framing"] == framing]
    selection = select_datasets(part_summary, ctx.config.selection_size)
    units, prefix = SLOPE_UNITS[framing], _prefix(ctx, framing)
    ctx.lines += [f"### {FRAMING_LABELS[framing]}", "",
                  f"Selection for the violins and curves: {len(selection)} of {len(part_summary)} datasets, evenly "
                  "spaced over the rank of the mean slope (lowest and highest included): "
                  + ", ".join(f"`{d}`" for d in selection) + ".", ""]
    fig = plot_steerability_violins(ctx.per_sample[ctx.per_sample["framing"] == framing], rows, datasets=selection,
                                    units=units, title=f"{prefix}Per-sample steerability, {FRAMING_LABELS[framing]}, "
                                    f"layer {ctx.layer} ({len(selection)} datasets)")
    n = int(part_summary.set_index("dataset").loc[selection, "n_samples"].sum())
    ctx.figure(fig, f"violins_{framing}", f"{prefix}{framing}: per-sample steerability ({units}) and anti-steerable "
                                          f"share with 95% CI, n = {n} samples")
    strips = [("mean_slope", 0.0, "slope 0", units, rows, "summary_mean_slope"),
              ("anti_steerable_fraction", 0.5, "50% anti-steerable", "share of samples", rows,
               "summary_anti_steerable_fraction")]
    if framing == "free_text" and not token_cis.empty:
        strips.append(("anti_steerable_fraction", 0.5, "50% anti-steerable", "share of samples, per-token slope",
                       token_cis[token_cis["level"] == "dataset"], "summary_anti_steerable_fraction_per_token"))
    for statistic, reference, ref_label, stat_units, table, name in strips:
        n_sets = int((table["statistic"] == statistic).sum())
        fig = plot_intervals(table, statistic=statistic, units=stat_units, reference=reference,
                             reference_label=ref_label, max_rows=40,
                             title=f"{prefix}{statistic} per dataset ({stat_units}), {FRAMING_LABELS[framing]} "
                                   f"({n_sets} datasets sorted by the estimate, 95% CIs; panels share one x-scale)")
        ctx.figure(fig, f"{name}_{framing}", f"{prefix}All {framing} datasets, sorted: {statistic} ({stat_units}) "
                                             "with 95% CI (samples resampled)")
    props = read_unit_propensities(ctx.out_dir / "steerability", ctx.steer_config, framing)
    fig = plot_propensity_curves_ci(props[props["dataset"].isin(selection)], units=PROPENSITY_UNITS[framing],
                                    datasets=selection, n_boot=ctx.config.n_boot, seed=ctx.config.seed,
                                    title=f"{prefix}Propensity vs multiplier, {FRAMING_LABELS[framing]}, layer "
                                          f"{ctx.layer} (bands: 95% CI of the mean)")
    ctx.figure(fig, f"propensity_curves_{framing}",
               f"{prefix}{framing}: mean propensity ({PROPENSITY_UNITS[framing]}) vs multiplier per dataset")


def _framings_correlation(ctx) -> None:
    from interp_steer.evaluation import correlation_ci

    summary = ctx.summary
    paired = summary[summary["source"] == "persona"].assign(
        behaviour=lambda f: f["dataset"].str.replace("@free_text", "", regex=False))
    paired = paired.pivot_table(index="behaviour", columns="framing", values="mean_slope").dropna()
    if {"ab", "free_text"} <= set(paired.columns) and len(paired) >= 4:
        res = correlation_ci(paired["ab"], paired["free_text"], method="spearman", n_boot=ctx.config.n_boot,
                             seed=ctx.config.seed)
        ctx.lines += ["Do the persona sets that steer in one framing steer in the other (one point per dataset, "
                      "i.i.d. bootstrap over datasets; n_samples = datasets)?", ""]
        ctx.add_headline(over_datasets(headline_rows(res.to_frame(), "framings", "persona sets, A/B vs free-text "
                                                     "mean slope", "rank correlation")), "framings")


def free_text_section(ctx) -> None:
    """§4: the free-text sets near 50% anti-steerable (and how little they steer), per-token propensity, and the
    completion length as the free-text spurious factor."""
    from interp_steer.evaluation import correlation_ci

    nb, sd = ctx.config.n_boot, ctx.config.seed
    ft = ctx.summary[ctx.summary["framing"] == "free_text"].set_index("dataset")
    cis = pd.read_csv(ctx.out_dir / "tables" / "steerability_cis.csv")
    rows = cis[(cis["level"] == "dataset") & (cis["framing"] == "free_text")]
    anti = rows[rows["statistic"] == "anti_steerable_fraction"].set_index("dataset")
    slope = rows[rows["statistic"] == "mean_slope"].set_index("dataset")
    near = anti[(anti["ci_low"] <= 0.5) & (anti["ci_high"] >= 0.5)].index.tolist()
    ctx.lines += ["## 4. Free text: the sets near 50% anti-steerable, per-token propensity, completion length", "",
                  f"**Near 50% anti-steerable** (the closest match to the paper's finding): {len(near)} of {len(anti)} "
                  "free-text datasets have an anti-steerable fraction whose 95% CI includes 50%.", ""]
    token = pd.DataFrame()
    if not ctx.per_token.empty:
        token = pd.read_csv(ctx.out_dir / "tables" / "steerability_cis_per_token.csv")
        token = token[token["level"] == "dataset"]
    if near:
        table = pd.DataFrame({"dataset": near,
                              "anti_steerable (summed)": [format_ci(*anti.loc[d, ["estimate", "ci_low", "ci_high"]])
                                                          for d in near],
                              "mean_slope (nats/unit)": [format_ci(*slope.loc[d, ["estimate", "ci_low", "ci_high"]])
                                                         for d in near]})
        if not token.empty:
            tok = token[token["statistic"] == "anti_steerable_fraction"].set_index("dataset")
            table["anti_steerable (per token)"] = [format_ci(*tok.loc[d, ["estimate", "ci_low", "ci_high"]])
                                                   if d in tok.index else "n/a" for d in near]
        from interp_steer.analysis.markdown_tables import markdown_table

        ctx.lines += [markdown_table(table), ""]
    if len(ft) >= 4:
        res = correlation_ci(ft["anti_steerable_fraction"], ft["mean_slope"], method="spearman", n_boot=nb, seed=sd)
        ctx.lines += ["Are the sets near 50% the ones that barely steer? Rank correlation over free-text datasets of "
                      "the anti-steerable fraction with the mean slope (i.i.d. bootstrap over datasets):", ""]
        ctx.add_headline(over_datasets(headline_rows(res.to_frame(), "free_text", "free-text sets, anti-steerable "
                                                     "fraction vs mean slope", "rank correlation")), "free_text")
        if near:
            ctx.lines += [f"Median mean slope of the {len(near)} near-50% sets: "
                          f"{float(ft.loc[near, 'mean_slope'].median()):.2f} nats per unit; of the other "
                          f"{len(ft) - len(near)}: {float(ft.drop(index=near)['mean_slope'].median()):.2f}.", ""]
    _length_factor(ctx)


def _length_factor(ctx) -> None:
    """Completion length as the free-text spurious factor (the A/B analogue is the answer letter)."""
    from interp_steer.evaluation import correlation_ci
    from interp_steer.stats.per_token import length_share_longer

    if ctx.per_token.empty:
        ctx.lines += ["Per-token propensity and completion length: no completion lengths available.", ""]
        return
    lengths = ctx.lengths
    longer = int(round(length_share_longer(lengths) * len(lengths)))
    ctx.lines += ["**Completion length, the free-text spurious factor.** The summed log-prob of a longer completion "
                  "is lower, so the summed propensity favours the shorter statement; `length_difference` = "
                  "n_pos_tokens − n_neg_tokens (tokens of the study's tokenizer, `tables/completion_lengths.csv`). "
                  "Correlations over samples, datasets resampled with all their samples:", ""]
    rows = [wilson_row("free_text", "free-text test pairs", "share_positive_longer", longer, len(lengths),
                       lengths["dataset"].nunique(), "share of pairs")]
    summed = ctx.per_sample[ctx.per_sample["framing"] == "free_text"][["dataset", "sample_id", "slope"]]
    merged = ctx.per_token.merge(summed, on=["dataset", "sample_id"], suffixes=("_per_token", "_summed"))
    for column, label in (("slope_summed", "summed slope"), ("slope_per_token", "per-token slope")):
        res = correlation_ci(merged["length_difference"], merged[column], clusters=merged["dataset"],
                             method="spearman", n_boot=ctx.config.n_boot, seed=ctx.config.seed)
        rows.append(headline_rows(res.to_frame(), "free_text", f"length difference vs {label}", "rank correlation"))
    ctx.add_headline(pd.concat(rows, ignore_index=True), "free_text")
    both = merged.assign(anti_summed=merged["slope_summed"] < 0, anti_token=merged["slope_per_token"] < 0)
    flips = int((both["anti_summed"] != both["anti_token"]).sum())
    ctx.lines += [f"{flips} of {len(both)} free-text samples change anti-steerable status between the summed and the "
                  f"per-token slope ({100 * flips / max(len(both), 1):.1f}%).", ""]
