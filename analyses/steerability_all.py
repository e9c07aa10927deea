"""Steerability across many datasets (Tan et al. 2024, Sec. 4): per-sample steerability distributions and
anti-steerable fractions of CAA vectors at one layer, on MWE persona sets (A/B and free-text framing) and MWE
advanced-AI-risk (xrisk) sets (A/B).

Work units are (dataset, framing) pairs taken in a fixed interleaved order — xrisk set, persona set in A/B,
the same persona set in free text, next xrisk set, … (persona sets in a seeded random order) — and run until
``--time-budget-min`` is used up; the report lists exactly which finished. Finished units are cached, so a
rerun with a larger budget continues the list.

    python analyses/steerability_all.py                          # layer from layer_scan.py, 13-minute budget
    python analyses/steerability_all.py --layer 15 --time-budget-min 120 --n-train 100 --n-test 100
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    Report, base_parser, chosen_layer, load_embedded_model, propensity_engine, read_unit, split_pairs, write_unit,
)


def work_units(seed: int) -> list[tuple[str, str]]:
    """(spec, framing) in the interleaved order described in the module docstring."""
    from interp_steer.data import list_datasets

    specs = list_datasets()
    persona = [s.split(":", 1)[1] for s in specs if s.startswith("persona:")]
    xrisk = [s.split(":", 1)[1] for s in specs if s.startswith("xrisk:")]
    random.Random(seed).shuffle(persona)
    units: list[tuple[str, str]] = []
    for i in range(max(len(persona), len(xrisk))):
        if i < len(xrisk):
            units.append((f"xrisk:{xrisk[i]}", "ab"))
        if i < len(persona):
            units += [(f"persona:{persona[i]}", "ab"), (f"persona:{persona[i]}@free_text", "free_text")]
    return units


def run_unit(model, engine, spec: str, layer: int, args) -> pd.DataFrame:
    from interp_steer.evaluation import steerability
    from interp_steer.methods.caa import extract_caa

    train, test = split_pairs(spec, args.n_train, args.n_test, args.seed)
    vector = extract_caa(model, train, [layer], progress=False, dataset=spec)
    propensities = engine(model, test, vector, args.multipliers, progress=False, vector_name=f"caa:{spec}")
    per_sample = steerability(propensities)
    return per_sample.assign(source=spec.split(":")[0], n_train=len(train),
                             vector_norm=float(next(iter(vector.directions.values())).norm()))


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], n_train=20, n_test=30)
    parser.add_argument("--layer", type=int, default=None, help="steering layer (default: layer_scan.py's choice)")
    parser.add_argument("--time-budget-min", type=float, default=13.0, help="stop starting new units after this")
    parser.add_argument("--max-units", type=int, default=None, help="cap on the number of (dataset, framing) units")
    parser.add_argument("--shard", default="0/1", help="I/N: compute only units with index %% N == I (run N processes "
                        "side by side, then once more with --time-budget-min 0 to write the combined report)")
    parser.add_argument("--framings", type=lambda s: s.split(","), default=["ab", "free_text"],
                        help="framings whose missing units may be computed (cached units of any framing are reported)")
    args = parser.parse_args()
    layer, layer_source = chosen_layer(args.layer)
    report = Report("steerability_all", f"Steerability of CAA vectors across MWE datasets at layer {layer} (SmolLM2-135M)", args.out)
    model = None  # loaded only when a unit has to be computed
    torch.set_num_threads(args.threads)
    engine, engine_name = propensity_engine()

    units = work_units(args.seed)[: args.max_units]
    deadline = time.time() + 60 * args.time_budget_min
    frames, skipped = [], []
    unit_seconds: list[float] = []
    shard, n_shards = (int(x) for x in args.shard.split("/"))
    selected = [u for u in units if u[1] in args.framings]
    mine = {u for i, u in enumerate(selected) if i % n_shards == shard}  # shards split the computable units evenly
    for spec, framing in units:
        key = f"L{layer}__{spec}__tr{args.n_train}_te{args.n_test}_s{args.seed}"
        frame = read_unit(report.out_dir, key)
        if frame is None and (spec, framing) not in mine:
            skipped.append(spec)
            continue
        if frame is None:
            # start a unit only if a typical unit still fits into the budget
            typical = max(unit_seconds[-4:]) if unit_seconds else 0.0
            if time.time() + typical > deadline:
                skipped.append(spec)
                continue
            t0 = time.time()
            model = model if model is not None else load_embedded_model(args.threads)
            frame = run_unit(model, engine, spec, layer, args)
            write_unit(report.out_dir, key, frame)
            unit_seconds.append(time.time() - t0)
            print(f"[steerability_all] {spec}: {unit_seconds[-1]:.0f}s", flush=True)
        frames.append(frame.assign(framing=framing))
    per_sample = pd.concat(frames, ignore_index=True)
    write_report(report, per_sample, layer, layer_source, skipped, args, engine_name)


def framing_label(framing: str) -> str:
    return "A/B (logit diff. per unit)" if framing == "ab" else "free text (log-prob diff. per unit)"


def write_report(report: Report, per_sample: pd.DataFrame, layer: int, layer_source: str, skipped: list[str],
                 args, engine_name: str) -> None:
    from interp_steer.evaluation import summarize_steerability
    from interp_steer.viz.plots import plot_anti_steerable_fraction, plot_steerability_distribution

    summary = summarize_steerability(per_sample, by=["source", "framing", "dataset", "layer"])
    report.save_csv(per_sample, "per_sample")
    ab = per_sample[per_sample["framing"] == "ab"]
    balanced = ab.groupby(["dataset", "is_A"])["slope"].mean().groupby("dataset").mean()
    summary["letter_balanced_slope"] = summary["dataset"].map(balanced)
    summary["share_positive_B"] = summary["dataset"].map(1 - ab.groupby("dataset")["is_A"].mean().astype(float))
    groups = summary.groupby(["source", "framing"]).agg(
        n_datasets=("dataset", "size"), n_samples=("n_samples", "sum"),
        mean_slope=("mean_slope", "mean"), median_of_medians=("median_slope", "median"),
        min_mean_slope=("mean_slope", "min"), max_mean_slope=("mean_slope", "max"),
        anti_steerable_fraction=("anti_steerable_fraction", "mean"),
        datasets_mostly_anti=("anti_steerable_fraction", lambda s: int((s > 0.5).sum())),
        letter_balanced_slope=("letter_balanced_slope", "mean"),
    ).reset_index()

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
    report.settings(args, {"layer": f"{layer} ({layer_source})", "engine": engine_name,
                           "unit order": "interleaved xrisk / persona A/B / persona free text, persona order shuffled with --seed"})
    print(report.write())


if __name__ == "__main__":
    main()
