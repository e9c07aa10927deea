"""Norm-relative layer scan: does the A/B framing steer once the CAA vector is as long as the residual stream?

The layer scan (``layer_scan.py``) uses raw CAA vectors. With letter-balanced training pairs the A/B vectors are
short (the answer-letter component cancels), so multipliers of ±1.5 barely move anything. Here every layer's CAA
direction is rescaled to the **mean residual-stream norm at that layer** (measured at the read position of the
same train pairs, :func:`interp_steer.methods.caa.activation_norms`), so a multiplier ``m`` adds a vector
``m`` times as long as a typical residual. The same is done for the free-text framing of the same datasets, so
both framings are compared on one scale.

    python analyses/norm_relative_scan.py                      # defaults below
    python analyses/norm_relative_scan.py --framings ab --layers 3:30:3

A thin entry point over :mod:`interp_steer.runs.scan` with ``ScanConfig(scale="resid_norm")``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report, base_parser, parse_int_list, scan_study  # noqa: E402

DATASETS = ("narcissism", "agreeableness", "desire-for-acquiring-power", "risk-seeking")
RELATIVE_MULTIPLIERS = (-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0)


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], n_train=30, n_test=30, multipliers=RELATIVE_MULTIPLIERS)
    parser.add_argument("--layers", type=parse_int_list, default=list(range(3, 30, 3)), help="e.g. 3:30:3 or 6,12")
    parser.add_argument("--datasets", type=lambda s: s.split(","), default=list(DATASETS), help="persona names")
    parser.add_argument("--framings", type=lambda s: s.split(","), default=["ab", "free_text"], help="ab,free_text")
    args = parser.parse_args()
    report, _, scanned = scan_study(args, "norm_relative_scan", "Norm-relative layer scan: A/B vs free text on one "
                                    f"scale ({args.model})", scale="resid_norm")
    # the study's columns: dataset = persona name; resid_norm = the rescaled vector's length (the residual norm)
    per_sample = scanned.assign(dataset=scanned["behaviour"], resid_norm=scanned["vector_norm"],
                                raw_vector_norm=scanned["raw_norm"])
    write_report(report, per_sample.drop(columns=["behaviour", "vector_norm", "raw_norm"]), args)


def write_report(report: Report, per_sample: pd.DataFrame, args) -> None:
    from interp_steer.viz.plots import plot_layer_scan

    report.save_csv(per_sample, "per_sample")
    per_sample = per_sample.assign(is_A=per_sample["is_A"].astype("boolean"))
    by_dataset = per_sample.groupby(["framing", "dataset", "layer"]).agg(
        mean_slope=("slope", "mean"), anti_steerable_fraction=("slope", lambda s: float((s < 0).mean())),
        resid_norm=("resid_norm", "first"), raw_vector_norm=("raw_vector_norm", "first"),
    ).reset_index()
    ab = per_sample[per_sample["framing"] == "ab"]
    if not ab.empty:
        balanced = ab.groupby(["dataset", "layer", "is_A"])["slope"].mean().groupby(["dataset", "layer"]).mean()
        by_dataset["letter_balanced_slope"] = [
            balanced.get((d, lay), float("nan")) if f == "ab" else float("nan")
            for f, d, lay in zip(by_dataset["framing"], by_dataset["dataset"], by_dataset["layer"])
        ]
    by_layer = by_dataset.groupby(["framing", "layer"]).agg(
        n_datasets=("dataset", "size"), mean_slope=("mean_slope", "mean"), min_dataset_slope=("mean_slope", "min"),
        max_dataset_slope=("mean_slope", "max"), anti_steerable_fraction=("anti_steerable_fraction", "mean"),
        mean_resid_norm=("resid_norm", "mean"), raw_to_resid_norm=("raw_vector_norm", "mean"),
        **({"letter_balanced_slope": ("letter_balanced_slope", "mean")} if not ab.empty else {}),
    ).reset_index()
    by_layer["raw_to_resid_norm"] = by_layer["raw_to_resid_norm"] / by_layer["mean_resid_norm"]

    report.text(
        f"Persona datasets {', '.join(args.datasets)}; {args.n_train} train / {args.n_test} test pairs each "
        "(letter-balanced prefixes of the stratified split); CAA direction per layer rescaled to the mean residual "
        f"norm at that layer; multipliers {args.multipliers} (fractions of that norm). Slope units: A/B — logit "
        "difference of the answer letters per unit relative multiplier; free text — log-prob difference of the "
        "completions (nats) per unit. `raw_to_resid_norm`: length of the raw CAA vector as a fraction of the "
        "residual norm (how far the raw scan's multipliers reach)."
    )
    report.lines += ["## Headline", ""]
    for framing, part in by_layer.groupby("framing"):
        best = part.loc[part["mean_slope"].idxmax()]
        report.text(
            f"- **{framing}**: best layer {int(best['layer'])} with mean slope {best['mean_slope']:.3f} per unit "
            f"(datasets {best['min_dataset_slope']:.3f} … {best['max_dataset_slope']:.3f}), "
            f"{100 * best['anti_steerable_fraction']:.0f}% anti-steerable; raw CAA vector = "
            f"{100 * part['raw_to_resid_norm'].min():.1f}–{100 * part['raw_to_resid_norm'].max():.1f}% of the residual norm."
        )
    report.table(by_layer, "summary_by_layer", caption="Per framing and layer, averaged over datasets.")
    for framing in by_dataset["framing"].unique():
        part = by_dataset[by_dataset["framing"] == framing]
        summary = part[["dataset", "layer", "mean_slope", "anti_steerable_fraction"]]
        unit = "logit diff" if framing == "ab" else "log-prob diff"
        report.figure(plot_layer_scan(summary, title=f"Norm-relative scan, {framing} ({unit} per unit of residual norm)"),
                      f"norm_relative_{framing}", f"{framing}: mean steerability (solid) and anti-steerable % (dashed) "
                      "per dataset vs layer, multipliers in units of the residual norm")
    report.table(by_dataset, "summary_by_dataset", caption="Per framing, dataset and layer.")
    report.settings(args, {"engine": "fast_propensities", "vector": "CAA, rescaled to the mean residual norm per layer"})
    print(report.write())


if __name__ == "__main__":
    main()
