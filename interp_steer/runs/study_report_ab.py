"""The study report's A/B sections: does the model do the A/B task at all (before any A/B reliability figure), why
the A/B steering is null (vector norms, slope sizes, per-letter slopes, matching rate, read off the tables) and the
spurious-factor variance split."""

from __future__ import annotations

import numpy as np
import pandas as pd

from interp_steer.report.format import format_ci
from interp_steer.runs.study_config import HEADLINE_COLUMNS, SLOPE_UNITS, headline_rows, read_unit_propensities, save_table

BASELINE_UNITS = {"matching_rate": "share of samples", "a_rate": "share of samples", "mean_propensity": "logits",
                  "mean_a_minus_b": "logits", "format_mass": "probability"}
SPURIOUS_UNITS = {"var_total": "logits² per unit²", "var_is_A": "logits² per unit²", "var_is_Yes": "logits² per unit²",
                  "var_unexplained": "logits² per unit²", "r2_is_A": "share of variance",
                  "r2_is_A_is_Yes": "share of variance"}
LETTER_BOUND = 0.9
"""The A/B task criterion: a model whose unsteered share of (A) answers has a 95% CI entirely above ``LETTER_BOUND``
(or below ``1 − LETTER_BOUND``) answers by letter, not by content."""
FORMAT_MASS_MIN = 0.5
UNINTERPRETABLE = "UNINTERPRETABLE (the model does not do the A/B task, §2): "


def wilson_row(section: str, group: str, statistic: str, successes: int, n: int, n_datasets: int,
               units: str = "share") -> pd.DataFrame:
    """A headline row for a proportion ``successes / n`` with its 95% Wilson interval."""
    from interp_steer.stats.intervals import proportion_interval

    _, low, high = proportion_interval(successes, n)
    return pd.DataFrame([{"section": section, "group": group, "statistic": statistic, "units": units,
                          "estimate": successes / n if n else float("nan"), "ci_low": low, "ci_high": high,
                          "n_samples": n, "n_datasets": n_datasets, "method": "wilson"}], columns=HEADLINE_COLUMNS)


def mean_over_datasets(values: pd.Series, section: str, group: str, statistic: str, units: str, n_samples: int,
                       ctx, how: str = "mean") -> pd.DataFrame:
    """A headline row: the mean (or median) of one value per dataset, i.i.d. bootstrap over datasets."""
    from interp_steer.stats.intervals import mean_interval, median_interval

    interval = {"mean": mean_interval, "median": median_interval}[how]
    estimate, low, high = interval(values, n_boot=ctx.config.n_boot, seed=ctx.config.seed)
    return pd.DataFrame([{"section": section, "group": group, "statistic": statistic, "units": units,
                          "estimate": estimate, "ci_low": low,
                          "ci_high": high, "n_samples": n_samples, "n_datasets": len(values),
                          "method": f"iid-{how}-over-datasets"}], columns=HEADLINE_COLUMNS)


def with_format_mass(props: pd.DataFrame, study_dir) -> pd.DataFrame:
    """``props`` with ``format_mass`` (p(A) + p(B), unsteered) on its multiplier-0 rows from the study's ``ab_task``
    stage (:mod:`interp_steer.runs.ab_task`), where that stage has run; unchanged otherwise."""
    from interp_steer.runs.ab_task import read_ab_task

    mass = read_ab_task(study_dir)
    if mass is None or mass.empty or props.empty:
        return props
    keyed = mass.drop_duplicates(["dataset", "sample_id"]).set_index(["dataset", "sample_id"])["format_mass"]
    at_zero = props["multiplier"] == 0.0
    index = pd.MultiIndex.from_frame(props[["dataset", "sample_id"]].astype(str))
    values = keyed.reindex(index).to_numpy()
    out = props.copy()
    out["format_mass"] = [v if z else float("nan") for v, z in zip(values, at_zero)]
    return out


def does_ab_task(a_rate_low: float, a_rate_high: float, mass_high: float | None = None) -> bool:
    """The report's criterion: the across-dataset unsteered (A)-preference CI is not entirely above ``LETTER_BOUND``
    or below ``1 − LETTER_BOUND``, and the format mass p(A)+p(B) (where recorded) is not entirely below
    ``FORMAT_MASS_MIN``."""
    saturated = a_rate_low > LETTER_BOUND or a_rate_high < 1 - LETTER_BOUND
    return not saturated and not (mass_high is not None and mass_high < FORMAT_MASS_MIN)


def ab_task_verdict(headline: pd.DataFrame) -> bool | None:
    """:func:`does_ab_task` from a finished study's ``tables/headline.csv`` (None: the table has no A/B-task rows)."""
    rows = headline[(headline["section"] == "ab_task") & (headline["group"] == "all sources / ab")]
    rows = rows.set_index("statistic")
    if "a_rate" not in rows.index:
        return None
    mass = float(rows.loc["mean_format_mass", "ci_high"]) if "mean_format_mass" in rows.index else None
    return does_ab_task(float(rows.loc["a_rate", "ci_low"]), float(rows.loc["a_rate", "ci_high"]), mass)


def ab_task_section(ctx) -> None:
    """§2: format mass p(A)+p(B) (where the unit files recorded it), matching-letter rate and unsteered letter
    preference; sets ``ctx.ab_interpretable`` by the criterion stated in the report."""
    from interp_steer.evaluation import ab_baseline
    from interp_steer.viz.uncertainty_plots import plot_intervals

    nb, sd = ctx.config.n_boot, ctx.config.seed
    props = read_unit_propensities(ctx.out_dir / "steerability", ctx.steer_config, "ab")
    props = with_format_mass(props, ctx.out_dir)
    baseline = ab_baseline(props, by=["dataset"], levels=("dataset",), n_boot=nb, seed=sd)
    baseline["source"] = baseline["dataset"].str.split(":").str[0]
    frames = [baseline]
    ctx.lines += [
        "## 2. Does the model do the A/B task?", "",
        "Before any A/B reliability figure: at multiplier 0, `matching_rate` = share of samples where the model "
        "prefers the behaviour-matching letter; `a_rate` = share where it prefers (A), whatever (A) means (Wilson "
        "intervals per dataset); `format_mass` = p(A) + p(B) at the answer position.", "",
        f"**Criterion.** The model does the A/B task when (i) its unsteered letter preference is not saturated: the "
        f"95% CI of the across-dataset `a_rate` is not entirely above {LETTER_BOUND} or below {1 - LETTER_BOUND:.1f} "
        f"(otherwise it answers by letter, not by content), and (ii) where recorded, the mean format mass is at "
        f"least {FORMAT_MASS_MIN}. Otherwise every A/B steerability figure below is labelled *uninterpretable*: "
        "about half the samples sit at a letter floor or ceiling, and a slope or a \"50% anti-steerable\" then "
        "describes the letter preference, not the behaviour.", ""]
    rows = None
    for source, group in [("all sources", props)] + list(props.groupby(props["dataset"].str.split(":").str[0])):
        if group["dataset"].nunique() < 2:
            continue
        across_rows = ab_baseline(group, by=["dataset"], levels=("across_datasets",), n_boot=nb, seed=sd)
        frames.append(across_rows.assign(source=source))
        ctx.add_headline(headline_rows(across_rows, "ab_task", f"{source} / ab", BASELINE_UNITS), "ab_task")
        rows = across_rows.set_index("statistic") if source == "all sources" else rows
    save_table(pd.concat(frames, ignore_index=True), ctx.out_dir, "ab_baseline")
    per_dataset = baseline.pivot_table(index="dataset", columns="statistic", values=["estimate", "ci_low", "ci_high"])
    letter_bound = int(((per_dataset[("ci_low", "a_rate")] > LETTER_BOUND)
                        | (per_dataset[("ci_high", "a_rate")] < 1 - LETTER_BOUND)).sum())
    content = int(((per_dataset[("ci_low", "matching_rate")] > 0.5)
                   | (per_dataset[("ci_high", "matching_rate")] < 0.5)).sum())
    has_mass = "format_mass" in props.columns and props["format_mass"].notna().any()
    mass_note = ("" if has_mass else "Format mass: **not recorded** by this study's unit files (they keep the two "
                 "letters' logit difference and the pair-normalised p(matching), not p(A) + p(B)) until the study's A/B-task "
                 "stage (one unsteered forward pass per A/B test sample) has finished every dataset. Criterion (ii) "
                 "is therefore not applied.")
    mass_high = None
    if has_mass:
        zero = props[props["multiplier"] == 0.0].dropna(subset=["format_mass"])
        per_set = zero.groupby("dataset")["format_mass"].mean()
        mass_row = mean_over_datasets(per_set, "ab_task", "all sources / ab", "mean_format_mass",
                                      "probability p(A)+p(B)", int(len(zero)), ctx)
        ctx.add_headline(mass_row, "ab_task")
        mass_high = float(mass_row["ci_high"].iloc[0])
        est, lo, hi = (float(mass_row[c].iloc[0]) for c in ("estimate", "ci_low", "ci_high"))
        mass_note = (f"Format mass p(A) + p(B), unsteered, mean over {per_set.size} datasets: {format_ci(est, lo, hi)} "
                     f"({int(len(zero))} samples; `ab_task/per_sample.csv`); {int((per_set < FORMAT_MASS_MIN).sum())} "
                     f"of {per_set.size} datasets have a mean below {FORMAT_MASS_MIN}.")
    # with fewer than two A/B datasets there is no across-dataset preference row: only the format mass is tested
    a_low, a_high = ((float(rows.loc["a_rate", "ci_low"]), float(rows.loc["a_rate", "ci_high"])) if rows is not None
                     else (0.5, 0.5))
    ctx.ab_interpretable = does_ab_task(a_low, a_high, mass_high)
    n_sets = int(per_dataset.shape[0])
    ctx.lines += [f"- {letter_bound} of {n_sets} A/B datasets have an `a_rate` whose 95% CI lies above {LETTER_BOUND} "
                  f"(or below {1 - LETTER_BOUND:.1f}): the model picks one letter whatever the question; "
                  f"{content} of {n_sets} have a `matching_rate` whose CI excludes 50% (the answer depends on content).",
                  *([f"- {mass_note}"] if mass_note else []),
                  f"- **Verdict: the model {'does' if ctx.ab_interpretable else 'does NOT do'} the A/B task** by this "
                  "criterion" + ("" if ctx.ab_interpretable else "; the A/B figures below are labelled "
                                 "uninterpretable."), ""]
    fig = plot_intervals(baseline, statistic="a_rate", units="share of samples preferring (A)", reference=0.5,
                         reference_label="no letter preference (50%)",
                         title=f"Unsteered preference for answer (A), {baseline['dataset'].nunique()} A/B "
                               "datasets (95% Wilson CIs)")
    ctx.figure(fig, "ab_baseline_a_rate", "Unsteered share of samples on which the model prefers (A), per A/B "
                                          "dataset, 95% CI")


def ab_null_section(ctx) -> None:
    """Why the A/B slopes are null, from the tables: CAA vector norm per framing, mean |slope|, mean slope per
    matching letter, the letter-direction slope, and the matching rate (§2)."""
    from interp_steer.evaluation import steerability_cis

    nb, sd = ctx.config.n_boot, ctx.config.seed
    per_sample = ctx.per_sample
    ctx.lines += ["## 5. Why the A/B steering is null here (from the tables)", "",
                  "Read off `steerability/per_sample.csv` (`vector_norm`, `slope`, `is_A`) and "
                  "`steerability/spurious.csv` (`mean_slope_pos_is_A` / `_pos_is_B`); each number with its 95% CI.", ""]
    rows = []
    norms = per_sample.groupby(["framing", "dataset"])["vector_norm"].first()
    sizes = per_sample.groupby("framing")["slope"].size()
    for framing in ctx.framings:
        rows.append(mean_over_datasets(norms.loc[framing], "ab_null", f"{framing} CAA vectors", "mean_vector_norm",
                                       "residual-stream norm", int(sizes[framing]), ctx))
    persona = norms.reset_index().assign(behaviour=lambda f: f["dataset"].str.replace("@free_text", "", regex=False))
    persona = persona[persona["dataset"].str.startswith("persona:")].pivot_table(
        index="behaviour", columns="framing", values="vector_norm").dropna()
    if {"ab", "free_text"} <= set(persona.columns) and len(persona) >= 3:
        rows.append(mean_over_datasets(persona["free_text"] / persona["ab"], "ab_null",
                                       "persona sets in both framings", "median_norm_ratio_free_text_over_ab", "ratio",
                                       2 * len(persona), ctx, how="median"))
    magnitude = steerability_cis(per_sample.assign(abs_slope=per_sample["slope"].abs()), by=("framing",),
                                 slope="abs_slope", levels=("across_datasets",), n_boot=nb, seed=sd)
    for framing in ctx.framings:
        part = magnitude[(magnitude["framing"] == framing) & (magnitude["statistic"] == "mean_slope")]
        rows.append(headline_rows(part.assign(statistic="mean_abs_slope"), "ab_null", f"{framing} samples",
                                  SLOPE_UNITS[framing]))
    ab = per_sample[per_sample["kind"] == "ab"]
    ab = ab.assign(matching_letter=np.where(ab["is_A"].astype(bool), "(A)", "(B)"))
    letters = steerability_cis(ab, by=("matching_letter",), levels=("across_datasets",), n_boot=nb, seed=sd)
    for letter in ("(A)", "(B)"):
        part = letters[(letters["matching_letter"] == letter) & (letters["statistic"] == "mean_slope")]
        rows.append(headline_rows(part, "ab_null", f"A/B samples whose matching answer is {letter}",
                                  SLOPE_UNITS["ab"]))
    spurious = ctx.steer_tables.get("spurious", pd.DataFrame())
    if not spurious.empty:
        both = spurious.dropna(subset=["mean_slope_pos_is_A", "mean_slope_pos_is_B"])
        toward_a = (both["mean_slope_pos_is_A"] - both["mean_slope_pos_is_B"]) / 2
        rows.append(mean_over_datasets(toward_a, "ab_null", "A/B datasets", "letter_direction_slope",
                                       "logit(A) − logit(B) per unit multiplier", int(both["n_samples"].sum()), ctx))
        rows.append(mean_over_datasets(toward_a.abs(), "ab_null", "A/B datasets", "abs_letter_direction_slope",
                                       "|logit(A) − logit(B)| per unit multiplier", int(both["n_samples"].sum()), ctx))
        balanced = (both["mean_slope_pos_is_A"] + both["mean_slope_pos_is_B"]).abs() / 2
        rows.append(mean_over_datasets(balanced, "ab_null", "A/B datasets", "abs_letter_balanced_slope",
                                       "logits per unit multiplier", int(both["n_samples"].sum()), ctx))
        opposite = int((np.sign(both["mean_slope_pos_is_A"]) != np.sign(both["mean_slope_pos_is_B"])).sum())
        rows.append(wilson_row("ab_null", "A/B datasets", "share_opposite_sign_letter_slopes", opposite, len(both),
                               len(both), "share of datasets"))
    table = pd.concat(rows, ignore_index=True)
    save_table(table, ctx.out_dir, "ab_null")
    ctx.add_headline(table, "ab_null")
    ctx.lines += ["How to read it: per dataset, `letter_direction_slope` = half the difference of the mean slopes of "
                  "the samples whose matching letter is (A) and (B) = how fast the vector moves logit(A) − logit(B), "
                  "whatever the letters mean (its sign varies between datasets, so its mean over datasets is near 0 "
                  "while its mean absolute value is not); `abs_letter_balanced_slope` = |half the sum| = what is left "
                  "for the behaviour. Per-letter slopes of opposite sign in most datasets, a letter push larger than "
                  "the behaviour part, a matching rate at 50% (§2) and an A/B vector much shorter than the free-text "
                  "one are what the tables show.", ""]


def spurious_section(ctx) -> None:
    """§6: the spurious-factor variance split of the A/B slopes (headline numbers in scientific notation)."""
    from interp_steer.evaluation import spurious_cis
    from interp_steer.viz.uncertainty_plots import plot_spurious_variance_split

    per_sample = ctx.per_sample
    ab_samples = per_sample[per_sample["kind"] == "ab"]
    # is_Yes read back as a nullable boolean with NA (xrisk rows): as float, NaN where unknown, for spurious_cis
    ab_samples = ab_samples.assign(is_Yes=ab_samples["is_Yes"].astype("Float64").astype(float))
    sp = spurious_cis(ab_samples, n_boot=ctx.config.n_boot, seed=ctx.config.seed)
    save_table(sp, ctx.out_dir, "spurious_cis")
    ctx.lines += ["## 6. Spurious factors (A/B)", "",
                  "The sample variance of per-sample steerability split by sequential least squares into the part "
                  "explained by `is_A` (the matching answer is (A)), the further part explained by `is_Yes` (the "
                  "matching answer means Yes), and the unexplained rest (logits² per unit multiplier²). The "
                  "free-text analogue of the answer letter is the completion length (§4).", ""]
    sp_across = sp[sp["level"] == "across_datasets"]
    if not sp_across.empty:
        ctx.add_headline(headline_rows(sp_across, "spurious", "A/B datasets (mean over datasets)", SPURIOUS_UNITS),
                         "spurious")
    if "spurious" in ctx.steer_tables:
        prefix = "" if ctx.ab_interpretable else UNINTERPRETABLE
        n_sets = len(ctx.steer_tables["spurious"])
        fig = plot_spurious_variance_split(ctx.steer_tables["spurious"], units="logits per unit multiplier",
                                           max_rows=40, title=f"{prefix}Spurious factors: variance of per-sample A/B "
                                           f"steerability ({n_sets} datasets; each panel its own x-scale, stated "
                                           "below it)")
        ctx.figure(fig, "spurious_variance", f"{prefix}Variance of per-sample A/B steerability explained by is_A, "
                   "is_Yes and unexplained, per dataset; each panel has its own x-scale, its maximum stated under it "
                   "(point estimates; intervals in tables/spurious_cis.csv)")
