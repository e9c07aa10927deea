"""Layer scan (Tan et al. 2024 / CAA): at which layer does a CAA vector steer the MWE persona behaviours best?

For each persona dataset and each framing (A/B questions and free-text self-descriptions of the same
statements) a CAA vector is extracted from the train pairs at every scanned layer, and the test pairs'
propensities are measured at each multiplier with the vector added at that layer (one layer at a time).
Per layer the report gives the mean per-sample steerability (slope of propensity on multiplier) and the share
of anti-steerable samples (slope < 0), per framing and per dataset, and picks the layer used by the other studies.

Layer rule: the layer with the highest mean free-text steerability (mean over datasets of the per-dataset mean
slope); ties go to the lower layer. Free text is used because it is the framing in which the embedded model
steers at all (see the A/B table).

    python analyses/layer_scan.py                     # both framings, default sizes
    python analyses/layer_scan.py --framings ab       # one framing only (units are cached; rerun to combine)

A thin entry point over :mod:`interp_steer.runs.scan` (one work unit per dataset spec with all its layers; a
rerun computes only the missing ones, ``--executor ray`` spreads them over workers); this script adds the
study's columns, the layer choice and the report.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report, base_parser, parse_int_list, scan_study  # noqa: E402

from interp_steer.config import COARSE_MULTIPLIERS  # noqa: E402

DATASETS = (
    "narcissism",                                              # personality (dark triad)
    "agreeableness",                                           # personality (big five)
    "desire-for-acquiring-power",                              # power seeking
    "believes-AIs-are-not-an-existential-threat-to-humanity",  # AI-risk beliefs
    "politically-liberal",                                     # politics
    "subscribes-to-Christianity",                              # religion
    "interest-in-music",                                       # interests
    "risk-seeking",                                            # decision making
)
FRAMINGS = ("ab", "free_text")
SCAN_MULTIPLIERS = COARSE_MULTIPLIERS
SCAN_LAYERS = tuple(range(3, 30, 6))


def choose_layer(by_layer: pd.DataFrame) -> tuple[int, str]:
    free = by_layer[by_layer["framing"] == "free_text"].sort_values("layer")
    rule = "argmax over layers of the mean free-text steerability (mean over datasets); ties → lower layer"
    if free.empty:
        ab = by_layer.sort_values("layer")
        rule = "argmax over layers of the mean A/B steerability (no free-text results); ties → lower layer"
        return int(ab.loc[ab["mean_slope"].idxmax(), "layer"]), rule
    return int(free.loc[free["mean_slope"].idxmax(), "layer"]), rule


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], n_train=16, n_test=8, multipliers=SCAN_MULTIPLIERS)
    parser.add_argument("--layers", type=parse_int_list, default=list(SCAN_LAYERS), help="e.g. 0:30:3 or 6,12,18")
    parser.add_argument("--datasets", type=lambda s: s.split(","), default=list(DATASETS), help="persona names")
    parser.add_argument("--framings", type=lambda s: s.split(","), default=list(FRAMINGS), help="ab,free_text")
    args = parser.parse_args()
    report, _, per_sample = scan_study(args, "layer_scan", f"Layer scan: CAA steerability vs layer on MWE persona "
                                       f"datasets ({args.model})")
    write_report(report, per_sample, args, "fast_propensities")


def write_report(report: Report, per_sample: pd.DataFrame, args, engine_name: str) -> None:
    from interp_steer.evaluation import summarize_steerability
    from interp_steer.viz.plots import plot_layer_scan

    summary = summarize_steerability(per_sample, by=["framing", "behaviour", "layer"])
    norms = per_sample.groupby(["framing", "behaviour", "layer"])["vector_norm"].first().reset_index()
    summary = summary.merge(norms, on=["framing", "behaviour", "layer"])
    by_layer = summary.groupby(["framing", "layer"]).agg(
        n_datasets=("behaviour", "nunique"), mean_slope=("mean_slope", "mean"), sd_across_datasets=("mean_slope", "std"),
        median_slope=("median_slope", "mean"),
        anti_steerable_fraction=("anti_steerable_fraction", "mean"), mean_r2=("mean_r2", "mean"),
        mean_vector_norm=("vector_norm", "mean"),
    ).reset_index()
    ab = per_sample[per_sample["framing"] == "ab"]
    if not ab.empty:  # the A/B mean slope re-weighted so both positive letters count equally
        letter_means = ab.groupby(["behaviour", "layer", "is_A"])["slope"].mean().groupby(["layer"]).mean()
        by_layer["letter_balanced_slope"] = [letter_means.get(r.layer, float("nan")) if r.framing == "ab" else float("nan")
                                             for r in by_layer.itertuples()]
        share_b = 1 - ab["is_A"].astype(float).mean()
    layer, rule = choose_layer(by_layer)
    (report.out_dir / "chosen_layer.json").write_text(json.dumps({"layer": layer, "rule": rule}, indent=2))
    report.save_csv(per_sample, "per_sample")
    report.save_csv(summary, "summary_by_dataset")

    n_samples = per_sample.groupby("framing")["sample_id"].size() // per_sample["layer"].nunique()
    report.text(
        "CAA vectors (mean difference of positive − negative residuals, read at the answer letter for A/B and "
        "averaged over the completion for free text) are extracted from train pairs at each scanned layer and "
        "added, times the multiplier, from the last prompt token on. Propensity: logit(positive letter) − "
        "logit(negative letter) for A/B; log p(positive completion) − log p(negative completion) for free text. "
        "Steerability = least-squares slope of a sample's propensity on the multiplier; anti-steerable = slope < 0.",
        f"**Datasets** ({len(args.datasets)} MWE persona sets): " + ", ".join(f"`{d}`" for d in args.datasets) + ".",
        f"**Sizes**: {args.n_train} train / {args.n_test} test pairs per dataset and framing, multipliers "
        f"{args.multipliers}, layers {args.layers}; {', '.join(f'{k}: {v} test samples in all' for k, v in n_samples.items())}. "
        "These are reduced sizes chosen so the scan fits a 15-minute box on a shared 2-core CPU; rerun with "
        "`--n-train/--n-test/--multipliers/--layers` for the full sizes.",
    )
    if "unit_seconds" in per_sample.columns:
        seconds = per_sample.groupby(["framing", "behaviour"])["unit_seconds"].first().groupby("framing").sum()
        report.text("**Compute time** (one thread, shared 2-core CPU; sum over the dataset units): "
                    + ", ".join(f"{k}: {v / 60:.1f} min" for k, v in seconds.items()) + ".")
    report.lines += ["## Chosen layer", ""]
    chosen = by_layer[by_layer["layer"] == layer].set_index("framing")
    ab_part = (f" At that layer the A/B framing has mean slope {chosen.at['ab', 'mean_slope']:.3f} logits/unit with "
               f"{100 * chosen.at['ab', 'anti_steerable_fraction']:.0f}% anti-steerable samples." if "ab" in chosen.index else "")
    ft_part = (f" Free text: mean slope {chosen.at['free_text', 'mean_slope']:.2f} nats/unit, "
               f"{100 * chosen.at['free_text', 'anti_steerable_fraction']:.0f}% anti-steerable." if "free_text" in chosen.index else "")
    report.text(f"**Layer {layer}** — rule: {rule}.{ft_part}{ab_part}")

    report.lines += ["## Per layer (averaged over datasets)", ""]
    for framing in by_layer["framing"].unique():
        part = by_layer[by_layer["framing"] == framing]
        best, worst = part.loc[part["mean_slope"].idxmax()], part.loc[part["mean_slope"].idxmin()]
        report.text(f"**{framing}**: mean slope ranges from {worst['mean_slope']:.3f} (layer {int(worst['layer'])}) to "
                    f"{best['mean_slope']:.3f} (layer {int(best['layer'])}); anti-steerable fraction "
                    f"{100 * part['anti_steerable_fraction'].min():.0f}–{100 * part['anti_steerable_fraction'].max():.0f}% "
                    f"(mean over layers {100 * part['anti_steerable_fraction'].mean():.0f}%).")
    if not ab.empty:
        ab_norms = by_layer[by_layer["framing"] == "ab"]["mean_vector_norm"]
        report.text(f"**Note (A/B)**: train and test slices are prefixes of each dataset's stratified split ordered so that "
                    f"(A) and (B) alternate ({100 * share_b:.0f}% of the test samples have the positive answer at (B)). "
                    "With letter-balanced training pairs the answer-letter component of the CAA difference cancels, and "
                    f"what is left is small (mean vector norm {ab_norms.min():.2f}–{ab_norms.max():.2f} across layers, "
                    "against the free-text vectors' norms in the table): at multipliers up to ±"
                    f"{max(abs(m) for m in args.multipliers):g} it does not move the A/B logit difference. "
                    "`letter_balanced_slope` averages the per-letter mean slopes so (A) and (B) count equally.")
    report.table(by_layer, "summary_by_layer", caption="Mean over datasets of the per-dataset mean slope (and its "
                 "standard deviation across datasets), of the median slope, "
                 "anti-steerable fraction, mean R² of the per-sample lines, and mean L2 norm of the CAA vector.")
    for framing in summary["framing"].unique():
        part = summary[summary["framing"] == framing].rename(columns={"behaviour": "dataset"})
        unit = "logit diff" if framing == "ab" else "log-prob diff"
        report.figure(plot_layer_scan(part, title=f"Layer scan, {framing} framing ({unit} per unit multiplier)"),
                      f"layer_scan_{framing}", f"{framing}: mean steerability (solid) and anti-steerable % (dashed) per dataset vs layer")
    report.lines += ["## Per dataset at the chosen layer", ""]
    at_layer = summary[summary["layer"] == layer][["framing", "behaviour", "n_samples", "mean_slope", "median_slope",
                                                    "anti_steerable_fraction", "mean_r2", "vector_norm"]]
    report.table(at_layer)
    report.settings(args, {"engine": engine_name, "split": "stratified 50/50 train/test (seed), first n of each part"})
    print(report.write())


if __name__ == "__main__":
    main()
