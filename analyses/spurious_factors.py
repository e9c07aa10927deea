"""Spurious factors (Tan et al. 2024, Sec. 5): how much of the per-sample steerability variance of the A/B
datasets is explained by the answer letter (``is_A``: the positive answer is option A) and, on top of it,
by ``is_Yes`` (the positive answer means "Yes").

No new forward passes: reads the per-sample table of ``steerability_all.py``
(``analyses/results/steerability_all/per_sample.csv``) and applies the study's combine step
:func:`interp_steer.runs.steerability.spurious_by_dataset` to its A/B rows (a run of the study also writes that
table as ``spurious.csv``); this script adds the report and plot.

    python analyses/spurious_factors.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_ROOT, Report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-sample", type=Path, default=RESULTS_ROOT / "steerability_all" / "per_sample.csv",
                        help="per-sample steerability table with is_A / is_Yes columns")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from interp_steer.runs.files import read_table
    from interp_steer.runs.steerability import spurious_by_dataset
    from interp_steer.viz.plots import plot_spurious_variance

    if not args.per_sample.exists():
        raise SystemExit(f"{args.per_sample} not found: run analyses/steerability_all.py first")
    per_sample = read_table(args.per_sample)
    ab = per_sample[per_sample["kind"] == "ab"]
    report = Report("spurious_factors", "Spurious factors: steerability variance explained by is_A and is_Yes (A/B datasets)", args.out)
    spurious = spurious_by_dataset(per_sample)  # the steerability study's combine step (its spurious table)
    if spurious.empty:
        raise SystemExit(f"{args.per_sample} has no A/B rows (kind == 'ab'): nothing to split")

    layer = sorted(ab["layer"].unique())
    n_yes = spurious["r2_is_A_is_Yes"].notna().sum()
    report.text(
        f"Input: `{args.per_sample.relative_to(RESULTS_ROOT.parent) if args.per_sample.is_relative_to(RESULTS_ROOT.parent) else args.per_sample}` "
        f"(CAA at layer {', '.join(map(str, layer))}), A/B rows only: {len(spurious)} datasets, {len(ab)} samples. "
        "Per dataset: OLS of the per-sample slope on is_A (R² `r2_is_A`), then on is_A + is_Yes (`r2_is_A_is_Yes`); "
        "the increment is what is_Yes adds. is_Yes is known for all persona A/B samples (their option order makes "
        "letter and Yes/No uncorrelated by construction) but only for xrisk datasets whose positive answer text "
        f"starts with Yes/No; where any sample lacks it the is_Yes columns are – ({n_yes} of {len(spurious)} datasets have them).",
    )
    report.lines += ["## Headline", ""]
    for source, part in spurious.groupby("source"):
        yes = part["r2_increment_is_Yes"].dropna()
        report.text(f"- **{source}** ({len(part)} datasets): is_A explains on average {100 * part['r2_is_A'].mean():.0f}% of the "
                    f"steerability variance (median {100 * part['r2_is_A'].median():.0f}%, max {100 * part['r2_is_A'].max():.0f}%)"
                    + (f"; is_Yes adds {100 * yes.mean():.0f}% on average ({len(yes)} datasets)." if len(yes) else "; is_Yes unknown."))
    gap = (spurious["mean_slope_pos_is_A"] - spurious["mean_slope_pos_is_B"])
    bigger = int((gap.abs() > spurious["mean_slope"].abs()).sum())
    report.text(f"- Mean slope when the positive answer is (A) minus when it is (B): {gap.mean():+.3f} logits/unit on average "
                f"(mean |gap| {gap.abs().mean():.3f}) vs a mean |slope| of {spurious['mean_slope'].abs().mean():.3f}; in "
                f"{bigger} of {len(spurious)} datasets the A-vs-B gap is larger than the dataset's mean slope, i.e. which "
                "letter the vector favours matters more there than the behaviour.")
    report.figure(plot_spurious_variance(spurious, title="Steerability variance explained by is_A (+ is_Yes)"),
                  "spurious_variance", "R² of per-sample steerability on is_A (blue) and the increment from is_Yes (orange), per A/B dataset")
    report.table(spurious.sort_values("r2_is_A", ascending=False)[
        ["dataset", "n_samples", "r2_is_A", "r2_is_A_is_Yes", "r2_increment_is_Yes", "mean_slope", "mean_slope_pos_is_A",
         "mean_slope_pos_is_B"]], "spurious_variance")
    report.settings(args, uses_model=False)
    print(report.write())


if __name__ == "__main__":
    main()
