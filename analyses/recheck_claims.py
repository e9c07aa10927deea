"""Intervals for two claims of analyses/README.md that the committed tables support only with qualifications.

No forward passes: everything is read from the committed per-sample tables.

* (e) BiPO vs CAA: is the spread of BiPO's per-sample slopes wider than CAA's only in absolute terms (SD), or also
  relative to its larger mean (coefficient of variation, SD / mean)? Paired bootstrap over each data set's
  24 test samples (the same samples for both vectors).
* (f) Norm-relative scan, A/B: do the per-sample A/B slopes move at residual-norm scale even though the
  letter-balanced mean is near 0? Mean |slope| and the mean slope of the samples whose matching answer is (A) and
  of those where it is (B), per layer; i.i.d. bootstrap over the 48 samples of a layer (3 data sets × 16, too few
  data sets for a data-set-level interval).

* (g) CLI scan: intervals for the per-layer figures (samples resampled within each data set).
* SAE-TS vs CAA: per-vector intervals and the paired difference from CAA.

Writes ``analyses/results/claims_recheck/{bipo_spread.csv, norm_relative_letters.csv, scan_cli_intervals.csv,
sae_vs_caa_intervals.csv, report.md}``.

    python analyses/recheck_claims.py [--n-boot 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table  # noqa: E402  (analyses/common.py)

from interp_steer.stats.bootstrap import Resample, bootstrap  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _weighted_sd(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    mean = (w * x).sum(1) / w.sum(1)
    return np.sqrt((w * (x - mean[:, None]) ** 2).sum(1) / w.sum(1))


def bipo_spread(per_sample: pd.DataFrame, *, n_boot: int, seed: int) -> pd.DataFrame:
    """Per free-text data set: mean-slope ratios (BiPO at the CAA norm and at its own norm vs CAA), SD and SD/mean of
    BiPO-at-CAA-norm vs CAA slopes and their ratios, with 95% CIs."""
    rows = []
    for dataset, frame in per_sample[per_sample["kind"] == "free_text"].groupby("dataset"):
        wide = frame.pivot_table(index="sample_id", columns="vector", values="slope").dropna()
        columns = {"caa": wide["caa"].to_numpy(float), "bipo": wide["bipo@caa_norm"].to_numpy(float),
                   "own": wide["bipo"].to_numpy(float)}

        def stat(r: Resample, d) -> np.ndarray:
            w = r.weights
            sd_c, sd_b = _weighted_sd(d["caa"][None, :], w), _weighted_sd(d["bipo"][None, :], w)
            m_c, m_b, m_o = ((w * d[k]).sum(1) / w.sum(1) for k in ("caa", "bipo", "own"))
            return np.stack([m_b / m_c, m_o / m_c, sd_b / sd_c, (sd_b / m_b) / (sd_c / m_c), sd_c / m_c, sd_b / m_b],
                            axis=1)

        res = bootstrap(columns, stat, names=["eqnorm_mean_ratio", "own_norm_mean_ratio", "sd_ratio", "cv_ratio",
                                              "cv_caa", "cv_bipo"], n_boot=n_boot, seed=seed)
        rows.append(res.to_frame(dataset=dataset))
    return pd.concat(rows, ignore_index=True)


def norm_relative_letters(per_sample: pd.DataFrame, *, n_boot: int, seed: int) -> pd.DataFrame:
    """Per layer of the A/B norm-relative scan: mean slope, mean |slope|, mean slope where the matching answer is
    (A) and where it is (B), and how many samples of each letter move toward (B) (slope < 0 for (A), > 0 for (B))."""
    ab = per_sample[per_sample["framing"] == "ab"].assign(
        is_A=lambda f: f["is_A"].astype(str).str.lower().eq("true"))
    rows = []
    for layer, frame in ab.groupby("layer"):
        slope = frame["slope"].to_numpy(float)
        for name, values in (("mean_slope", slope), ("mean_abs_slope", np.abs(slope)),
                             ("mean_slope_matching_A", slope[frame["is_A"].to_numpy()]),
                             ("mean_slope_matching_B", slope[~frame["is_A"].to_numpy()])):
            res = bootstrap({"x": values}, lambda r, d: r.pooled_mean(d["x"]), names=[name], n_boot=n_boot, seed=seed)
            rows.append(res.to_frame(layer=int(layer)))
        a, b = frame[frame["is_A"]], frame[~frame["is_A"]]
        rows.append(pd.DataFrame([{"layer": int(layer), "statistic": "samples_toward_B",
                                   "estimate": int((a["slope"] < 0).sum() + (b["slope"] > 0).sum()),
                                   "n_samples": len(frame)}]))
    return pd.concat(rows, ignore_index=True)


def scan_cli_intervals(per_sample: pd.DataFrame, *, n_boot: int, seed: int) -> pd.DataFrame:
    """(g): per dataset and layer of the CLI scan, mean / median slope and anti-steerable fraction with 95% CIs
    (samples resampled within the dataset)."""
    from interp_steer.evaluation import steerability_cis

    return steerability_cis(per_sample, by=("layer",), levels=("dataset",), n_boot=n_boot, seed=seed)


def sae_vs_caa_intervals(per_sample: pd.DataFrame, *, n_boot: int, seed: int) -> pd.DataFrame:
    """SAE-TS vs CAA (and the other vectors of the comparison): per vector the mean slope and anti-steerable
    fraction, and the paired difference of each vector's mean slope from CAA's, over the same test samples."""
    from interp_steer.evaluation import steerability_cis

    per_vector = steerability_cis(per_sample.assign(dataset=per_sample["vector"]), levels=("dataset",),
                                  n_boot=n_boot, seed=seed).rename(columns={"dataset": "vector"})
    wide = per_sample.pivot_table(index="sample_id", columns="vector", values="slope").dropna()
    others = [v for v in wide.columns if v != "caa"]
    res = bootstrap({v: wide[v].to_numpy(float) for v in wide.columns},
                    lambda r, d: np.stack([r.pooled_mean(d[v] - d["caa"]) for v in others], axis=1),
                    names=[f"mean_slope_minus_caa:{v}" for v in others], n_boot=n_boot, seed=seed)
    return pd.concat([per_vector, res.to_frame()], ignore_index=True)


def _scan_peaks(scan: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for dataset, frame in scan.groupby("dataset"):
        means = frame[frame["statistic"] == "mean_slope"]
        layer = int(means.loc[means["estimate"].abs().idxmax(), "layer"])
        at = frame[frame["layer"] == layer].set_index("statistic")
        row = {"dataset": dataset, "layer": layer, "n_samples": int(at.loc["mean_slope", "n_samples"])}
        for statistic in ("mean_slope", "anti_steerable_fraction"):
            e, lo, hi = at.loc[statistic, ["estimate", "ci_low", "ci_high"]]
            row[statistic] = f"{e:.4g} [{lo:.4g}, {hi:.4g}]"
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = RESULTS / "claims_recheck"
    out.mkdir(parents=True, exist_ok=True)

    spread = bipo_spread(pd.read_csv(RESULTS / "bipo_vs_caa" / "per_sample.csv"), n_boot=args.n_boot, seed=args.seed)
    letters = norm_relative_letters(pd.read_csv(RESULTS / "norm_relative_scan" / "per_sample.csv"),
                                    n_boot=args.n_boot, seed=args.seed)
    scan = scan_cli_intervals(pd.read_csv(RESULTS / "scan_cli" / "per_sample.csv"), n_boot=args.n_boot, seed=args.seed)
    scan.to_csv(out / "scan_cli_intervals.csv", index=False)
    spread.to_csv(out / "bipo_spread.csv", index=False)
    sae = {run: sae_vs_caa_intervals(pd.read_csv(RESULTS / "sae_vs_caa" / run / "per_sample_steerability.csv"),
                                     n_boot=args.n_boot, seed=args.seed).assign(run=run)
           for run in ("sentiment", "power_ab")}
    sae_frame = pd.concat(sae.values(), ignore_index=True)
    sae_frame.to_csv(out / "sae_vs_caa_intervals.csv", index=False)
    letters.to_csv(out / "norm_relative_letters.csv", index=False)

    def ci(frame: pd.DataFrame) -> pd.Series:
        return frame.apply(lambda r: f"{r['estimate']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
                           if pd.notna(r.get("ci_low")) else f"{int(r['estimate'])} of {int(r['n_samples'])}", axis=1)

    spread_table = spread.assign(ci=ci(spread)).pivot_table(index="dataset", columns="statistic", values="ci",
                                                            aggfunc="first")
    letter_table = letters.assign(ci=ci(letters)).pivot_table(index="layer", columns="statistic", values="ci",
                                                              aggfunc="first")
    lines = [
        "# Re-checked claims: BiPO's spread, A/B slopes at residual-norm scale, the CLI scan's intervals", "",
        f"From committed per-sample tables, no new forward passes (`python analyses/recheck_claims.py`); 95% "
        f"percentile bootstrap, {args.n_boot} resamples, seed {args.seed}.", "",
        "## (e) BiPO vs CAA: mean and spread of per-sample slopes", "",
        "Paired bootstrap over the 24 test samples of each free-text data set. `eqnorm_mean_ratio` = mean slope of "
        "BiPO rescaled to the CAA norm / CAA's; `own_norm_mean_ratio` = the same for BiPO at its own norm; `sd_ratio` = SD(BiPO) / SD(CAA); "
        "`cv_*` = SD / mean slope; `cv_ratio` = cv_bipo / cv_caa (below 1: BiPO's slopes are *less* spread "
        "relative to its mean).", "",
        markdown_table(spread_table.reset_index()), "",
        "## (f) Norm-relative scan, A/B: per-sample slopes (logits per unit multiplier, 1 = the residual norm)", "",
        "48 samples per layer (narcissism, desire-for-acquiring-power, risk-seeking, 16 letter-balanced test "
        "samples each: 24 whose matching answer is (A), 24 (B)). `samples_toward_B`: samples whose slope moves the "
        "answer toward (B), whatever the behaviour (slope < 0 when the matching answer is (A), > 0 when it is (B)).",
        "",
        markdown_table(letter_table.reset_index()), "",
        "## (g) CLI scan: per data set, the layer with the largest |mean slope| (50 test samples each)", "",
        "All 30 layers × 3 data sets with CIs: `scan_cli_intervals.csv` (samples resampled within the data set).", "",
        markdown_table(_scan_peaks(scan)), "",
        "## SAE-TS vs CAA (`sae_vs_caa`): mean slope per vector and the paired difference from CAA", "",
        "Same test samples for every vector (sentiment: 24, free text, nats/unit; power_ab: 30, A/B, logits/unit); "
        "`mean_slope_minus_caa:X` = mean over samples of slope(X) − slope(CAA).", "",
        markdown_table(sae_frame.assign(ci=ci(sae_frame))[["run", "vector", "statistic", "ci", "n_samples"]]
                       .fillna({"vector": "paired"})), "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    print(f"wrote {out / 'report.md'}")


if __name__ == "__main__":
    main()
