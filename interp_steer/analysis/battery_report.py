"""``report.md`` of the anti-steerability battery: each hypothesis with effect, CI, raw and adjusted p, verdict."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def _fmt(x, digits: int = 3) -> str:
    return "—" if pd.isna(x) else f"{x:.{digits}f}"


def _p(x) -> str:
    return "—" if pd.isna(x) else (f"{x:.2g}" if x >= 1e-3 else f"{x:.1e}")


def write_report(out_dir: Path, results: pd.DataFrame, shares: pd.DataFrame, heldout: pd.DataFrame,
                 samples: pd.DataFrame, per_dataset: pd.DataFrame, *, digest: str, plan: Path,
                 pooled_base_rate_auc: float, study_dir: Path) -> None:
    """Write ``out_dir/report.md`` from the battery's tables."""
    n_act = int(per_dataset["braun_mean_cosine"].notna().sum())
    held = results[results["verdict"].str.startswith("held")]
    lines = [
        f"# Anti-steerability battery — {Path(study_dir).name}", "",
        f"Plan: `{Path(plan).name}` (sha256 `{digest[:16]}…`, locked). Free-text samples: {len(samples)} in "
        f"{samples['dataset'].nunique()} datasets; anti-steerable (slope < 0): {int(samples['anti'].sum())} "
        f"({samples['anti'].mean():.1%}). Activation features on the first {n_act} datasets of the unit order "
        "(amendment 1).", "",
        "## Verdict", "",
        ("**No pre-registered hypothesis held** (Holm-adjusted p < 0.05 in the predicted direction)."
         if held.empty else "Held (Holm-adjusted p < 0.05, predicted direction): "
         + "; ".join(f"{r.id} `{r.feature}` ({r.effect} {_fmt(r.estimate)} [{_fmt(r.low)}, {_fmt(r.high)}], "
                     f"Holm p {_p(r.p_holm)})" for r in held.itertuples()) + "."), "",
        "## Hypotheses (one Holm family of 14; BH q alongside)", "",
        "| id | feature | predicted | effect | estimate | 95% CI | datasets | p | Holm p | BH q | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    arrow = {1: "> null", -1: "< null", 0: "two-sided"}
    for r in results.itertuples():
        lines.append(f"| {r.id} | `{r.feature}` | {arrow[int(r.predicted)]} | {r.effect if isinstance(r.effect, str) else '—'} "
                     f"| {_fmt(r.estimate)} | [{_fmt(r.low)}, {_fmt(r.high)}] | {int(r.n_datasets)} | {_p(r.p)} "
                     f"| {_p(r.p_holm)} | {_p(r.q_bh)} | {r.verdict} |")
    lines += ["", "Null: within-dataset AUC 0.5 (chance) for H1–H12, ρ = 0 for D1–D2. The base-rate-only score "
              f"(each sample scored by its dataset's anti-steerable fraction) has a pooled AUC of "
              f"{pooled_base_rate_auc:.3f} and a within-dataset AUC of exactly 0.5: pooled AUCs above it, not 0.5, "
              "would be informative.", "",
              "## Held out by dataset (logistic model on a random half of datasets, scored on the other half)", "",
              "| model | within-dataset AUC (seed 0) | 95% CI | pooled AUC | base-rate-only pooled AUC | "
              "within AUC over 20 halvings: mean [min, max] |", "|---|---|---|---|---|---|"]
    for r in heldout.itertuples():
        lines.append(f"| {r.model} | {_fmt(r.within_auc)} | [{_fmt(r.low)}, {_fmt(r.high)}] | {_fmt(r.pooled_auc)} "
                     f"| {_fmt(r.base_rate_pooled_auc)} | {_fmt(r.within_auc_mean_over_seeds)} "
                     f"[{_fmt(r.within_auc_min)}, {_fmt(r.within_auc_max)}] |")
    lines += ["", "## Decomposition of anti-steerable samples (slope = s_pos − s_neg; descriptive)", "",
              "Shares pooled over samples, 95% CIs from 2000 bootstrap resamples of datasets. s_pos / s_neg are OLS "
              "slopes of the summed log-probs on the multiplier (per-sample t-intervals in `decomposition.csv`).", "",
              "| category | n | share of anti-steerable | 95% CI |", "|---|---|---|---|"]
    for r in shares.itertuples():
        lines.append(f"| {r.category} | {r.n} | {r.share:.3f} | [{r.low:.3f}, {r.high:.3f}] |")
    lines += ["", "Per sample, median [IQR] of the two slopes (nats per unit multiplier; per token: divided by the "
              "completion's token count):", "", "| group | n | s_pos | s_neg | s_pos per token | s_neg per token |",
              "|---|---|---|---|---|---|"]
    for label, part in (("anti-steerable", samples[samples["anti"]]), ("steerable", samples[~samples["anti"]])):
        cells = [f"{part[c].median():.2f} [{part[c].quantile(0.25):.2f}, {part[c].quantile(0.75):.2f}]"
                 for c in ("s_pos", "s_neg", "s_pos_per_token", "s_neg_per_token")]
        lines.append(f"| {label} | {len(part)} | " + " | ".join(cells) + " |")
    summary_file = Path(out_dir) / "interventions" / "summary.csv"
    if summary_file.exists():
        lines += _intervention_lines(pd.read_csv(summary_file))
    lines += ["", "Files: `hypotheses.csv`, `heldout.csv`, `decomposition.csv`, `decomposition_shares.csv`, "
              "`per_dataset.csv`, `text_features.csv`, `features/` (activation features per dataset).", ""]
    (Path(out_dir) / "report.md").write_text("\n".join(lines), encoding="utf-8")


def _intervention_lines(summary: pd.DataFrame) -> list[str]:
    """The pilot of intervention (b): projection off the top-k logit-lens directions vs a random subspace."""
    lines = ["", "## Intervention (b), pilot: project v off its top-k logit-lens token directions", "",
             "Exploratory (plan §6), k = 100 fixed in advance (not tuned), datasets of the held-out half of the "
             "seed-0 dataset split; control: a random k-dimensional subspace. CIs: 2000 bootstrap resamples of "
             "datasets (few datasets: wide and unreliable).", "",
             "| projection | datasets | ‖v′‖/‖v‖ | mean slope before → after | mean change [95% CI] | anti-steerable "
             "before → after | anti-steerable turned steerable [95% CI] |", "|---|---|---|---|---|---|---|"]
    for r in summary.itertuples():
        lines.append(f"| {r.projection} | {r.n_datasets} | {r.mean_norm_ratio:.3f} | {r.mean_slope_before:.2f} → "
                     f"{r.mean_slope_after:.2f} | {r.mean_change:.2f} [{r.change_low:.2f}, {r.change_high:.2f}] | "
                     f"{r.anti_fraction_before:.3f} → {r.anti_fraction_after:.3f} | {r.turned_steerable:.3f} "
                     f"[{r.turned_low:.3f}, {r.turned_high:.3f}] of {r.n_anti_before} |")
    return lines
