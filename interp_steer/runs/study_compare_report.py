"""The cross-model study's runner (:func:`run_compare`: load, check, join, correlate) and its ``report.md``: the joined
per-dataset table, the correlations with their dataset-bootstrap CIs, scatter plots, the largest disagreements
with sample texts, the layer profiles on one relative-depth axis, and a "paper vs here" table."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from interp_steer.analysis.markdown_tables import markdown_table
from interp_steer.runs.files import write_table_atomic, write_text_atomic
from interp_steer.runs.study_compare import (
    check_compatible,
    depth_profiles,
    disagreements,
    join_datasets,
    load_side,
    model_correlations,
    sample_text,
    unique_labels,
)
from interp_steer.runs.study_config import SLOPE_UNITS, format_ci
from interp_steer.runs.study_report import Figures
from interp_steer.viz.compare_plots import column

PAPER = "Tan et al. 2024, arXiv:2407.12404"
PAPER_FIGURES = "the authors' figure files, dtch1997/repepo repepo/paper/figures/"
PAPER_ROWS = [
    ("models", "Llama-2-7b-chat, Qwen-1.5-14b-chat (abstract / §2)", None),
    ("datasets", "40 MWE datasets, A/B framing (Figure 1 caption: 13 of 40 shown)", None),
    ("share of inputs steered the wrong way", "\"several datasets produce the opposite behaviour for almost 50% of "
     "inputs\" (Figure 1 caption). Read by eye (±0.02) from the all-dataset plot the caption points to (Figure 18; "
     f"{PAPER_FIGURES}fraction_anti_steerable.png, Llama-2-7b-chat, 38 datasets): largest ≈ 0.49 (myopic-reward), "
     "none above 0.5, about 6 of 38 at ≥ 0.40, the most steerable sets below 0.1", "near50"),
    ("cross-model steerability", "\"steerability is mostly a property of the dataset rather than the model\" "
     "(abstract). Read by eye from the cross-model scatter "
     f"({PAPER_FIGURES}correlation_steerability_between_models.png): ID steerability of each dataset 0–4 logits/unit "
     "in both models, every dataset positive in both, points close to y = x with a positive regression slope; no "
     "coefficient is printed on the figure (their script, repepo/paper/compare_steerability_between_models.py, "
     "prints a Spearman ρ over datasets that is not stored), so no paper value is given", "corr"),
]


def _fmt(row: pd.Series) -> str:
    return f"{format_ci(row['estimate'], row['ci_low'], row['ci_high'])} (n = {int(row['n_samples'])} datasets)"


def _units(framing: str, variant: str) -> dict[str, str]:
    slope = "nats per token per unit multiplier" if variant == "per_token" else SLOPE_UNITS[framing]
    return {"mean_slope": slope, "anti_steerable_fraction": "share of samples"}


def _paper_table(sides, joined: pd.DataFrame, correlations: pd.DataFrame, ab_flag: str = "") -> list[str]:

    here = {"models": ", ".join(f"`{s.config.model}`" for s in sides),
            "datasets": ", ".join(f"{s.label}: {s.cis.groupby('framing')['dataset'].nunique().to_dict()}"
                                  for s in sides)}
    near = []
    for side in sides:
        lo = joined[column("anti_steerable_fraction", "summed", side.label, "ci_low")]
        hi = joined[column("anti_steerable_fraction", "summed", side.label, "ci_high")]
        for framing in sorted(joined["framing"].unique()):
            mask = joined["framing"] == framing
            near.append(f"{ab_flag if framing == 'ab' else ''}{side.label} {framing}: {int(((lo <= 0.5) & (hi >= 0.5) & mask).sum())} of "
                        f"{int(mask.sum())} datasets with a CI including 50%")
    here["near50"] = "; ".join(near)
    corr = correlations[(correlations["source"] == "all") & (correlations["measure"] == "mean_slope")
                        & (correlations["statistic"] == "spearman_r")]
    here["corr"] = "; ".join(f"{ab_flag if r.framing == 'ab' else ''}{r.framing} {r.variant}: Spearman {format_ci(r.estimate, r.ci_low, r.ci_high)} "
                             f"(n = {int(r.n_samples)} datasets)" for r in corr.itertuples()) or "n/a"
    why = {"models": "differs: 135M–270M models here, 7B–14B chat models there",
           "datasets": "differs: all 152 MWE A/B sets + persona sets in free text here",
           "near50": "compare with care: the paper's A/B propensity vs the free-text and A/B ones here",
           "corr": "same statistic (Spearman over datasets of the mean slope) as the authors' script; their "
                   "coefficient is not published, so only the direction can be compared"}
    rows = [{"headline": name, f"paper ({PAPER})": text, "here": here.get(key or name, ""), "same?": why[key or name]}
            for name, text, key in PAPER_ROWS]
    return ["## Paper vs here", "", "The paper column quotes the paper's text and what can be read by eye from "
            "the authors' published figures (cited); no coefficient of theirs is given where none is printed.", "",
            markdown_table(pd.DataFrame(rows)), ""]


def compute_table(sides) -> pd.DataFrame:
    """Per model and stage (:func:`~interp_steer.runs.study_config.estimated_cpu` of each study's ``timings.jsonl``):
    units, units whose CPU was measured, CPU-hours measured and estimated for every unit, the wall time that implies
    on two idle single-thread workers (estimated CPU-hours / 2, a projection) and the wall time summed as run."""
    from interp_steer.runs.study_config import estimated_cpu

    frames = []
    for side in sides:
        table = estimated_cpu(side.out_dir / "timings.jsonl")
        if table.empty:
            continue
        frames.append(pd.DataFrame({"model": side.label, "stage": table["stage"], "units": table["units"],
                                    "measured_units": table["measured_units"],
                                    "cpu_h_measured": table["cpu_s_measured"] / 3600,
                                    "cpu_h_all_units": table["cpu_s_estimated"] / 3600,
                                    "wall_h_2_workers_projected": table["cpu_s_estimated"] / 7200,
                                    "wall_h_summed_as_run": table["wall_s"] / 3600}))
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    totals = out.groupby("model", sort=False)[["units", "measured_units", "cpu_h_measured", "cpu_h_all_units",
                                               "wall_h_2_workers_projected", "wall_h_summed_as_run"]].sum().reset_index()
    return pd.concat([out, totals.assign(stage="all stages")], ignore_index=True)


def _compute_lines(table: pd.DataFrame) -> list[str]:
    if table.empty:
        return []
    shown = table.copy()
    for col in ("cpu_h_measured", "cpu_h_all_units", "wall_h_2_workers_projected", "wall_h_summed_as_run"):
        shown[col] = shown[col].map(lambda v: f"{v:.2f}")
    return ["## Compute, both models", "",
            "Per stage, from each study's `timings.jsonl` (this machine: 2 cores; one torch thread per unit; "
            "`units` counts the units timed — one whose run ended before its line was written is missing). "
            "`cpu_h_measured`: CPU of the `measured_units` whose computing process recorded it (or ran in the "
            "driving process); `cpu_h_all_units` adds, for each unit not measured (a Ray unit before the runner "
            "kept its own record), the mean of the measured units of its stage and framing; "
            "`wall_h_2_workers_projected` = `cpu_h_all_units` / 2, two idle single-thread workers (Ray, "
            "`--workers 2`) — a projection; `wall_h_summed_as_run`: the units' wall time as they ran, sharing the "
            "cores with other jobs (not the study's cost).", "",
            markdown_table(shown), ""]


def headline_side_by_side(sides, sections: Sequence[str] = ("id_ood", "generalisation")) -> pd.DataFrame:
    """The rows of ``sections`` in each study's ``tables/headline.csv``, one column per model (``value [95% CI]``,
    n datasets in brackets): what each study found about ID → OOD transfer, beside each other."""
    frames = []
    for side in sides:
        path = side.out_dir / "tables" / "headline.csv"
        if not path.exists():
            continue
        table = pd.read_csv(path)
        table = table[table["section"].isin(list(sections))]
        frames.append(table.assign(model=side.label, value=[
            f"{format_ci(e, lo, hi)} (n = {int(n)} datasets)"
            for e, lo, hi, n in zip(table["estimate"], table["ci_low"], table["ci_high"], table["n_datasets"])]))
    if not frames:
        return pd.DataFrame()
    joined = pd.concat(frames, ignore_index=True)
    wide = joined.pivot_table(index=["section", "group", "statistic", "units"], columns="model", values="value",
                              aggfunc="first", sort=False)
    return wide.reindex(columns=[s.label for s in sides if s.label in wide.columns]).reset_index()


def write_compare_report(out: Path, sides, tables: dict[str, pd.DataFrame], *, data_dir=None) -> None:
    """Write ``out/tables/*.csv``, ``out/figures/*.png`` and ``out/report.md``."""
    from interp_steer.viz.compare_plots import plot_depth_profiles, plot_model_scatter

    out.mkdir(parents=True, exist_ok=True)
    joined, correlations, profiles = tables["joined"], tables["correlations"], tables["profiles"]
    for name, frame in tables.items():
        write_table_atomic(frame, out / "tables" / f"{name}.csv")
    figures = Figures(out)
    ref = sides[0]
    lines = [f"# Cross-model steering reliability: {', '.join(f'`{s.label}`' for s in sides)}", "",
             "Joined from the finished studies " + ", ".join(f"`{s.out_dir}`" for s in sides) + " (same multipliers, "
             "units and datasets; checked). Per dataset: mean slope and anti-steerable fraction with their 95% "
             "CIs (samples resampled), summed and per token (free text). Correlations over datasets: i.i.d. "
             "bootstrap over datasets, 95% percentile CIs, n = datasets.", ""]
    no_ab = [s.label for s in sides if s.does_ab_task is False]
    ab_flag = "UNINTERPRETABLE (no A/B task, see above): " if no_ab else ""

    def flag(framing: str) -> str:  # the label in front of every A/B line and caption
        return ab_flag if framing == "ab" else ""

    if no_ab:
        one = len(no_ab) == 1
        lines += [f"**A/B framing.** {', '.join(f'`{x}`' for x in no_ab)} {'does' if one else 'do'} not do the A/B "
                  "task (each study's report, §2: the unsteered letter preference is saturated or the format mass "
                  f"p(A)+p(B) is low), so {'its' if one else 'their'} A/B slopes describe a letter preference, not the "
                  "behaviour; every A/B figure below is labelled uninterpretable and is no test of the paper's claim.",
                  ""]
    for k, side in enumerate(sides[1:], start=1):
        part = correlations[correlations["model_b"] == side.label]
        lines += [f"## Correlations: `{ref.label}` vs `{side.label}`", ""]
        for row in part[part["source"] == "all"].itertuples():
            lines.append(f"- {flag(row.framing)}{row.framing} / {row.variant} / **{row.measure}**: {row.statistic} = "
                         f"{format_ci(row.estimate, row.ci_low, row.ci_high)} (95% CI, {row.method}; "
                         f"n = {int(row.n_samples)} datasets)")
        lines += ["", "Per source (persona / xrisk) and framing:", ""]
        by_source = part[part["source"] != "all"].assign(ci=lambda f: [format_ci(e, lo, hi) for e, lo, hi in
                                                                       zip(f["estimate"], f["ci_low"], f["ci_high"])])
        if no_ab:
            by_source = by_source.assign(framing=by_source["framing"].replace({"ab": "ab (UNINTERPRETABLE)"}))
        if not by_source.empty:
            lines += [markdown_table(by_source[["framing", "source", "measure", "variant", "statistic", "ci",
                                                "n_samples"]]), ""]
        for framing in sorted(joined["framing"].unique()):
            for variant in ("summed", "per_token"):
                if variant == "per_token" and framing != "free_text":
                    continue
                title = (f"UNINTERPRETABLE ({', '.join(no_ab)}: no A/B task) — " if framing == "ab" and no_ab else ""
                         ) + f"Per-dataset steerability, {ref.label} vs {side.label}, {framing} ({variant}); bars: 95% CIs"
                fig = plot_model_scatter(joined, ref.label, side.label, framing=framing, variant=variant,
                                         units=_units(framing, variant), correlations=part, title=title)
                rel = figures.save(fig, f"scatter_{framing}_{variant}_vs{k}")
                caption = (f"{flag(framing)}{framing} ({variant}): per-dataset mean slope "
                           f"and anti-steerable fraction, {ref.label} vs {side.label}, 95% CIs")
                lines += [f"![{caption}]({rel})", "", f"*{caption}*", ""]
            gap = disagreements(joined, ref.label, side.label, framing)
            if gap.empty:
                continue
            lines += [f"{flag(framing)}Largest disagreements ({framing}, mean-slope "
                      "percentile rank):", ""]
            for row in gap.itertuples():
                lines.append(f"- `{row.dataset}`: rank {row.rank_a:.2f} vs {row.rank_b:.2f}; "
                             f"{sample_text(str(row.dataset), ref.config, data_dir)}")
            lines.append("")
    lines += ["## Layer profiles on one relative-depth axis", ""]
    for framing in sorted(profiles["framing"].unique()):
        fig = plot_depth_profiles(profiles, framing=framing, units=SLOPE_UNITS[framing])
        rel = figures.save(fig, f"depth_profiles_{framing}")
        caption = f"{framing}: mean steerability across scan datasets vs layer / n_layers, 95% bands"
        lines += [f"![{caption}]({rel})", "", f"*{caption}*", ""]
    transfer = headline_side_by_side(sides)
    if not transfer.empty:
        write_table_atomic(transfer, out / "tables" / "id_ood_side_by_side.csv")
        lines += ["## ID → OOD prompts, both models", "",
                  "Each study's own ID/OOD headline (its report §7: the 5 × 5 grid of prompt variants on its persona "
                  "sets, relative steerability = slope(X→Y) / |slope(Y→Y)|, median over datasets, cluster bootstrap) "
                  "beside each other (n = the datasets of each study's grid).", "",
                  markdown_table(transfer.fillna("n/a")), ""]
    compute = compute_table(sides)
    if not compute.empty:
        write_table_atomic(compute, out / "tables" / "compute.csv")
    lines += _compute_lines(compute)
    lines += _paper_table(sides, joined, correlations, ab_flag)
    write_text_atomic("\n".join(lines), out / "report.md")


def run_compare(dirs: Sequence[str | Path], out: str | Path, *, data_dir: str | Path | None = None, n_boot: int = 2000,
                seed: int = 0) -> dict[str, pd.DataFrame]:
    """Load, check (one-line refusal), join, correlate and write ``out/report.md`` with tables and figures."""
    sides = [load_side(d) for d in dirs]
    unique_labels(sides)
    check_compatible(sides)
    joined = join_datasets(sides)
    ref = sides[0].label
    correlations = pd.concat([model_correlations(joined, ref, s.label, n_boot=n_boot, seed=seed) for s in sides[1:]],
                             ignore_index=True)
    tables = {"joined": joined, "correlations": correlations, "profiles": depth_profiles(sides)}
    write_compare_report(Path(out), sides, tables, data_dir=data_dir)
    return tables
