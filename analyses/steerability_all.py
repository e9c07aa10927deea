"""Steerability across many datasets (Tan et al. 2024, Sec. 4): per-sample steerability distributions and
anti-steerable fractions of CAA vectors at one layer, on MWE persona sets (A/B and free-text framing) and MWE
advanced-AI-risk (xrisk) sets (A/B).

A thin entry point over :mod:`interp_steer.runs.steerability` (units = dataset × framing, in the interleaved
order of :func:`~interp_steer.runs.steerability.mwe_study_datasets`: xrisk set, persona set in A/B, the same
persona set in free text, next xrisk set, …). Units run until ``--time-budget-min`` is used up; the report lists
exactly which finished, and a rerun with a larger budget continues the list.

    python analyses/steerability_all.py                          # layer from layer_scan.py, 13-minute budget
    python analyses/steerability_all.py --layer 15 --time-budget-min 120 --n-train 100 --n-test 100
    python analyses/steerability_all.py --shard 0/2 & python analyses/steerability_all.py --shard 1/2
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report, base_parser, chosen_layer, study_executor  # noqa: E402

from interp_steer.runs.steerability import SteerabilityConfig  # noqa: E402


def main() -> None:
    from interp_steer.runs.steerability import (
        combine_steerability,
        finished_units,
        mwe_study_datasets,
        run_steerability,
    )

    parser = base_parser(__doc__.split("\n")[0], SteerabilityConfig)
    parser.add_argument("--layer", type=int, default=None, help="steering layer (default: layer_scan.py's choice)")
    parser.add_argument("--datasets", type=lambda s: s.split(","), default=None,
                        help="dataset specs (default: every MWE persona set in both framings and every xrisk set)")
    parser.add_argument("--time-budget-min", type=float, default=13.0, help="stop starting new units after this")
    parser.add_argument("--max-units", type=int, default=None, help="cap on the number of (dataset, framing) units")
    parser.add_argument("--shard", default="0/1", help="I/N: compute only units with index %% N == I (run N processes "
                        "side by side, then once more with --time-budget-min 0 to write the combined report)")
    parser.add_argument("--framings", type=lambda s: s.split(","), default=["ab", "free_text"],
                        help="framings whose missing units may be computed (finished units of any framing are reported)")
    args = parser.parse_args()
    layer, layer_source = chosen_layer(args.layer)
    datasets = (args.datasets or mwe_study_datasets(args.seed))[: args.max_units]
    config = SteerabilityConfig(model=args.model, datasets=datasets, layer=layer, multipliers=args.multipliers,
                                n_train=args.n_train, n_test=args.n_test, seed=args.seed, framings=args.framings,
                                shard=args.shard)
    report = Report("steerability_all", f"Steerability of CAA vectors across MWE datasets at layer {layer} "
                    f"({args.model})", args.out)
    run = run_steerability(config, report.out_dir, executor=study_executor(args),
                           time_budget_s=60 * args.time_budget_min)
    print(f"[steerability_all] {run.summary_line()}", flush=True)
    run.raise_if_failed()
    tables = run.tables or combine_steerability(report.out_dir, config)
    done = {u.dataset for u in finished_units(report.out_dir, config)}
    write_report(report, tables, layer, layer_source, [d for d in datasets if d not in done], args)


def framing_label(framing: str) -> str:
    return "A/B (logit diff. per unit)" if framing == "ab" else "free text (log-prob diff. per unit)"


def write_report(report: Report, tables: dict[str, pd.DataFrame], layer: int, layer_source: str,
                 skipped: list[str], args) -> None:
    from interp_steer.viz.plots import plot_anti_steerable_fraction, plot_steerability_distribution

    per_sample, summary, groups = tables["per_sample"], tables["summary"], tables["summary_by_source"]
    report.text(
        f"CAA vector at **layer {layer}** ({layer_source}), extracted per dataset from {args.n_train} train pairs and "
        f"evaluated on {args.n_test} test pairs at multipliers {args.multipliers}. Steerability = slope of a "
        "sample's propensity on the multiplier (A/B: logit difference of the answer letters; free text: "
        "log-prob difference of the completions); anti-steerable = slope < 0.",
        f"**Datasets done** ({summary['dataset'].nunique()} (dataset, framing) units): " + ", ".join(f"`{d}`" for d in summary["dataset"]) + "."
        + (f" Not computed: {len(skipped)} more units (time budget or `--framings`; a rerun continues)." if skipped else ""),
    )
    report.lines += ["## Headline", ""]
    for row in groups.itertuples():
        report.text(f"- **{row.source} / {row.framing}** ({row.n_datasets} datasets, {row.n_samples} samples): mean "
                    f"steerability {row.mean_slope:.3f} (per-dataset means {row.min_mean_slope:.3f} … {row.max_mean_slope:.3f}), "
                    f"{100 * row.anti_steerable_fraction:.0f}% anti-steerable samples on average; "
                    f"{row.datasets_mostly_anti} datasets have more than half of their samples anti-steerable.")
    report.text("A/B caveat: per-sample A/B slopes are dominated by the answer letter (see `spurious_factors`), so an "
                "A/B mean slope depends on the test set's letter mix (`share_positive_B`, first n of the stratified "
                "test half). `letter_balanced_slope` averages the per-letter mean slopes so (A) and (B) count equally.")
    report.table(groups, "summary_by_source")
    for framing in summary["framing"].unique():
        part_samples = per_sample[per_sample["framing"] == framing]
        part_summary = summary[summary["framing"] == framing]
        report.lines += [f"## {framing_label(framing)}", ""]
        report.figure(plot_steerability_distribution(part_samples, title=f"Per-sample steerability, {framing_label(framing)}, layer {layer}"),
                      f"steerability_distribution_{framing}", f"{framing}: per-sample steerability per dataset, sorted by median")
        report.figure(plot_anti_steerable_fraction(part_summary, title=f"Anti-steerable samples, {framing}, layer {layer}"),
                      f"anti_steerable_fraction_{framing}", f"{framing}: share of samples with negative slope per dataset")
        report.table(part_summary.sort_values("median_slope")[["dataset", "n_samples", "mean_slope", "median_slope", "std_slope",
                                                               "anti_steerable_fraction", "sign_flip_fraction", "mean_r2",
                                                               "letter_balanced_slope", "share_positive_B"]],
                     f"summary_{framing}")
    # the same persona statements in both framings: do the datasets that steer in one framing steer in the other?
    persona = summary[summary["source"] == "persona"].assign(
        behaviour=lambda f: f["dataset"].str.replace("@free_text", "", regex=False))
    paired = persona.pivot_table(index="behaviour", columns="framing", values="mean_slope").dropna()
    if len(paired) >= 3:
        rho = paired["ab"].corr(paired["free_text"], method="spearman")
        report.text(f"Persona datasets with both framings done: {len(paired)}; Spearman correlation of the per-dataset "
                    f"mean steerability between the A/B and the free-text framing: {rho:.2f}.")
    report.settings(args, {"layer": f"{layer} ({layer_source})", "engine": "fast_propensities",
                           "unit order": "interleaved xrisk / persona A/B / persona free text, persona order shuffled with --seed"})
    print(report.write())


if __name__ == "__main__":
    main()
