"""Spurious factors (Tan et al. 2024, Sec. 5): how much of the per-sample steerability variance of the A/B
datasets is explained by the answer letter (``is_A``: the positive answer is option A) and, on top of it,
by ``is_Yes`` (the positive answer means "Yes").

No new forward passes: reads the per-sample table of ``steerability_all.py``
(``analyses/results/steerability_all/per_sample.csv``) and keeps its A/B rows.

    python analyses/spurious_factors.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_ROOT, Report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-sample", type=Path, default=RESULTS_ROOT / "steerability_all" / "per_sample.csv",
                        help="per-sample steerability table with is_A / is_Yes columns")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from interp_steer.evaluation import spurious_factor_variance
    from interp_steer.viz.plots import plot_spurious_variance

    if not args.per_sample.exists():
        raise SystemExit(f"{args.per_sample} not found: run analyses/steerability_all.py first")
    per_sample = pd.read_csv(args.per_sample, dtype={"sample_id": str})
    for col in ("is_A", "is_Yes"):
        per_sample[col] = per_sample[col].astype("boolean")
    ab = per_sample[per_sample["kind"] == "ab"]
    report = Report("spurious_factors", "Spurious factors: steerability variance explained by is_A and is_Yes (A/B datasets)", args.out)
    spurious = spurious_factor_variance(ab, by=["dataset"])
    # how different the two letter groups are (the effect behind r2_is_A)
    by_letter = ab.groupby(["dataset", "is_A"])["slope"].mean().unstack()
    spurious["mean_slope_pos_is_A"] = spurious["dataset"].map(by_letter.get(True, pd.Series(dtype=float)))
    spurious["mean_slope_pos_is_B"] = spurious["dataset"].map(by_letter.get(False, pd.Series(dtype=float)))
    spurious["mean_slope"] = spurious["dataset"].map(ab.groupby("dataset")["slope"].mean())
    spurious["source"] = spurious["dataset"].str.split(":").str[0]

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
