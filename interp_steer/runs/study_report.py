"""The study's ``report.md``: interval tables (tables before plots), every figure, and a 95% CI with n beside every
headline number (``tables/headline.csv`` holds them all). A pure function of the stages' finished tables and the
completion lengths: :func:`interp_steer.runs.study.run_study` calls it once every stage has finished, and
:func:`interp_steer.runs.study_rebuild.rebuild_study_report` calls it on a finished study directory without any
forward pass. The A/B sections are in :mod:`interp_steer.runs.study_report_ab`, the per-token and free-text
sections in :mod:`interp_steer.runs.study_report_text`, the ID/OOD section in
:mod:`interp_steer.runs.study_report_grid`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from interp_steer.analysis.markdown_tables import markdown_table
from interp_steer.runs.files import write_bytes_atomic, write_text_atomic
from interp_steer.runs.study_config import (  # noqa: F401 - PER_TOKEN_SLOPE_UNITS, STEER_UNITS, units_of re-exported
    FRAMING_LABELS,
    HEADLINE_COLUMNS,
    PER_TOKEN_SLOPE_UNITS,
    SLOPE_UNITS,
    STEER_UNITS,
    StudyConfig,
    compute_totals,
    format_ci,
    headline_markdown,
    headline_rows,
    save_table,
    units_of,
)


class Figures:
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


@dataclass
class ReportContext:
    """What every report section reads and appends to: the study's settings and tables, the figure saver, the
    headline rows and the markdown lines."""

    out_dir: Path
    config: StudyConfig
    steer_config: Any
    per_sample: pd.DataFrame
    summary: pd.DataFrame
    steer_tables: dict[str, pd.DataFrame]
    lengths: pd.DataFrame
    layer: int
    figures: Figures
    headline: list[pd.DataFrame] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    ab_interpretable: bool = True
    per_token: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def framings(self) -> list[str]:
        return [f for f in ("ab", "free_text") if f in set(self.per_sample["framing"])]

    def add_headline(self, rows: pd.DataFrame, section: str) -> None:
        """Append headline rows and their bullets (each with its 95% CI and n)."""
        self.headline.append(rows)
        self.lines.extend(headline_markdown(rows, section) + [""])

    def figure(self, fig, name: str, caption: str) -> None:
        rel = self.figures.save(fig, name)
        self.lines.extend([f"![{caption}]({rel})", "", f"*{caption}*", ""])


def write_study_report(out_dir: Path, config: StudyConfig, scan_config, steer_config, profile: pd.DataFrame,
                       choice: dict[str, Any], steer_tables: dict[str, pd.DataFrame], id_per_sample: pd.DataFrame,
                       lengths: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Write ``out/tables``, ``out/figures`` and ``out/report.md``; returns ``(headline table, figure files)``.

    ``lengths``: the free-text completion token counts (:func:`interp_steer.stats.completion_lengths` of the
    study's test pairs; empty if there is no free-text dataset)."""
    from interp_steer.runs.study_report_ab import ab_null_section, ab_task_section, spurious_section
    from interp_steer.runs.study_report_grid import id_ood_section
    from interp_steer.runs.study_report_text import free_text_section, steerability_section

    ctx = ReportContext(out_dir, config, steer_config, steer_tables["per_sample"], steer_tables["summary"],
                        steer_tables, lengths, int(choice["layer"]), Figures(out_dir))
    _intro(ctx, choice)
    _layer_section(ctx, scan_config, profile, choice)
    if "ab" in ctx.framings:
        ab_task_section(ctx)  # before any A/B reliability figure: does the model do the task at all?
    steerability_section(ctx)
    if "free_text" in ctx.framings:
        free_text_section(ctx)
    if "ab" in ctx.framings:
        ab_null_section(ctx)
        spurious_section(ctx)
    id_ood_section(ctx, id_per_sample)
    table = _closing(ctx)
    write_text_atomic("\n".join(ctx.lines), out_dir / "report.md")
    return table, ctx.figures.files


def _intro(ctx: ReportContext, choice: dict[str, Any]) -> None:
    config = ctx.config
    n_units = ctx.per_sample.groupby("framing")["dataset"].nunique()
    ctx.lines += [
        f"# Steering reliability study (Tan et al. 2024) on `{config.model}` — preset `{config.preset}`", "",
        "CAA vectors (mean residual difference of the positive and negative completions) at one layer, added × the "
        f"multiplier from the last prompt token on; multipliers {config.multipliers}. Propensity: A/B = logit of the "
        "behaviour-matching answer letter − logit of the other (**logits**); free text = log p(positive completion) − "
        "log p(negative completion), each summed over the completion's tokens (**nats**), and per token = "
        "log p(positive)/n_pos − log p(negative)/n_neg (**nats per token**, the completions differ in length). "
        "Steerability = least-squares slope of a sample's propensity on the multiplier (units per unit multiplier); "
        "anti-steerable = slope < 0. Intervals: 95% bootstrap (percentile); per dataset the samples are resampled, "
        "across datasets the datasets and the samples within them (two-level), "
        f"{config.n_boot} resamples, seed {config.seed}. A/B and free-text numbers are never pooled (different units).",
        "",
        f"Coverage: {', '.join(f'{int(n)} datasets in {f}' for f, n in n_units.items())}; "
        f"{config.n_train} train / {config.n_test} test pairs per dataset (all available where fewer), from the "
        f"stratified split (test fraction {config.test_fraction}, seed {config.seed}).", "",
    ]


def _layer_section(ctx: ReportContext, scan_config, profile: pd.DataFrame, choice: dict[str, Any]) -> None:
    from interp_steer.viz.uncertainty_plots import plot_layer_profile

    config = ctx.config
    save_table(profile, ctx.out_dir, "layer_profile")
    ctx.lines += ["## 1. Layer choice", "",
                  f"Scan: {len(scan_config.datasets)} dataset specs × {len(scan_config.layers)} layers "
                  f"({scan_config.layers[0]}…{scan_config.layers[-1]}), multipliers {scan_config.multipliers}; CAA "
                  f"from the first {config.scan_n_train} pairs of each dataset's *train* part, scored on the next "
                  f"{config.scan_n_test} train pairs, so no sample the evaluation scores (test part) helps choose the "
                  f"layer. Rule: {choice['rule']}.", ""]
    ctx.add_headline(pd.DataFrame([{
        "section": "layer", "group": f"chosen layer {choice['layer']} ({choice['framing']})", "statistic": "mean_slope",
        "units": choice["units"], "estimate": choice["estimate"], "ci_low": choice["ci_low"],
        "ci_high": choice["ci_high"], "n_samples": choice["n_samples"], "n_datasets": choice["n_datasets"],
        "method": "cluster-percentile"}], columns=HEADLINE_COLUMNS), "layer")
    for framing in sorted(set(profile["framing"])):
        fig = plot_layer_profile(profile[profile["framing"] == framing], units=SLOPE_UNITS[framing],
                                 chosen=choice["layer"],
                                 title=f"Layer profile, {FRAMING_LABELS[framing]}: mean steerability across scan "
                                       f"datasets with 95% CI")
        ctx.figure(fig, f"layer_profile_{framing}",
                   f"Layer profile ({framing}): mean over scan datasets of the per-dataset mean slope "
                   f"({SLOPE_UNITS[framing]}), 95% two-level bootstrap band; dashed: chosen layer")


def _closing(ctx: ReportContext) -> pd.DataFrame:
    out_dir = ctx.out_dir
    table = pd.concat(ctx.headline, ignore_index=True)
    save_table(table, out_dir, "headline")
    ctx.lines += ["## Headline numbers", "", "Every number above, with its 95% CI and n (`tables/headline.csv`):", "",
                  markdown_table(table.assign(ci=[format_ci(e, lo, hi) for e, lo, hi in
                                                  zip(table["estimate"], table["ci_low"], table["ci_high"])])
                                 [["section", "group", "statistic", "ci", "units", "n_samples", "n_datasets"]]), ""]
    totals = compute_totals(out_dir / "timings.jsonl")
    save_table(totals, out_dir, "compute")
    ctx.lines += ["## Compute", "",
                  "Summed over every invocation (`timings.jsonl`: wall seconds of the driving process per finished "
                  "unit; CPU seconds of the process that computed the unit where the runner recorded them in "
                  "`<stage>/unit_timings.jsonl`, counted in `cpu_units`, else the driving process's, which misses "
                  "the CPU a Ray worker spent). The report itself is a function of the unit files "
                  "(`interp-steer study tan2024 --report-only`):", "",
                  markdown_table(totals.assign(wall_h=totals["wall_s"] / 3600, cpu_h=totals["cpu_s"] / 3600)), "",
                  f"Settings: `{out_dir.name}/config.json`; sub-runs in `scan/`, `steerability/`, `id_ood/` (each "
                  "with its config.json and run_report.json).", ""]
    return table


__all__ = ["Figures", "ReportContext", "headline_rows", "units_of", "write_study_report"]
