"""What ``scan``, ``evaluate`` and ``tune`` print: their tables through :mod:`interp_steer.report.console` (one
number rule, intervals as ``"x [lo, hi]"``, units in the headers), a "what this means" paragraph under each table,
and the paths written."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from interp_steer.report.console import compare_phrase, interval_phrase, paths_block, render_table
from interp_steer.report.format import format_ci, format_interval

SIDE_LABELS = {"n_samples": "n", "kl": "KL", "dnll": "ΔNLL", "format_mass": "format mass",
               "raw_multiplier": "raw multiplier", "n_passages": "passages"}
SIDE_UNITS = {"kl": "nats/token", "dnll": "nats/token"}


def _written(out: Path, names: Sequence[str]) -> list[Path]:
    return [out / n for n in names if (out / n).exists()]


def scan_text(summary: pd.DataFrame) -> str:
    """The layer scan's summary (one row per dataset × layer × vector)."""
    best = summary.loc[summary["mean_slope"].idxmax()]
    return render_table(
        summary, "Layer scan: steerability per dataset and layer (held-out split)",
        ["dataset", "layer", "n_samples", "mean_slope", "median_slope", "std_slope", "anti_steerable_fraction",
         "sign_flip_fraction"],
        labels={"n_samples": "n", "anti_steerable_fraction": "anti-steerable", "sign_flip_fraction": "sign flips"},
        meaning=f"the mean slope is how much a sample's propensity moves per unit multiplier (logits for A/B, nats "
                f"for free text). The steepest is {best['mean_slope']:.3g} at layer {int(best['layer'])} on "
                f"{best['dataset']}; the anti-steerable column is the share of samples that move the wrong way. "
                "These are point estimates over the held-out samples; `study` adds bootstrap intervals.")


def evaluate_text(tables: dict, baseline: pd.DataFrame | None, recommendation: dict, units: str, out: Path) -> str:
    """The evaluate run's steerability, side-effect, capability and baseline tables with their meanings."""
    parts = []
    steer = tables.get("steerability_ci")
    if steer is not None and len(steer):
        first = steer.iloc[0]
        parts.append(render_table(
            steer, "Steerability of each vector (slope of propensity on the multiplier, bootstrap 95% CI)",
            ["dataset", "layer", "vector", "n_samples", "mean_slope", "anti_steerable_fraction"],
            labels={"n_samples": "n", "anti_steerable_fraction": "anti-steerable"},
            meaning=f"for {first['vector']} the propensity changes by "
                    f"{interval_phrase(first['mean_slope'], first['mean_slope_lo'], first['mean_slope_hi'], 'per unit multiplier')}"
                    f"; a fraction {format_ci(first['anti_steerable_fraction'], first['anti_steerable_fraction_lo'], first['anti_steerable_fraction_hi'])} "
                    "of the samples move the wrong way. Random norm-matched vectors, when evaluated, show the noise floor."))
    side = tables.get("side_effects")
    if side is not None and len(side):
        top = side.loc[side["multiplier"].idxmax()]
        parts.append(render_table(
            side, f"Per multiplier ({units} units): shift vs multiplier 0 and side effects on neutral text",
            ["multiplier", "raw_multiplier", "n_samples", "shift", "kl", "dnll", "format_mass"],
            labels=SIDE_LABELS, units=SIDE_UNITS,
            meaning=f"at multiplier {top['multiplier']:+g} the behaviour shifts by "
                    f"{interval_phrase(top['shift'], top['shift_lo'], top['shift_hi'])} at a KL of "
                    f"{format_ci(top['kl'], top['kl_lo'], top['kl_hi'])} nats/token from the unsteered model "
                    "(0 = unchanged); format mass is the probability left on the answer letters (1 = the format holds)."))
    capability = tables.get("capability")
    if capability is not None and len(capability):
        parts.append(render_table(
            capability, "Capability under steering (letter-balanced multiple choice)",
            ["dataset", "multiplier", "n_items", "accuracy", "format_mass"], labels=SIDE_LABELS,
            meaning="accuracy at each multiplier on the same items; a drop whose interval clears the unsteered "
                    "one means steering costs capability."))
    if baseline is not None and len(baseline):
        parts.append(baseline_text(baseline))
    if recommendation.get("found"):
        parts.append(f"Recommended multiplier: {recommendation['multiplier']:g} ({units}); {recommendation['reason']}.\n")
    else:
        parts.append(f"No recommendation: {recommendation['reason']}.\n")
    names = ["summary", "per_sample", "propensities", "side_effects", "capability", "baseline", "generations"]
    files = [f"{n}.{ext}" for n in names for ext in ("parquet", "csv")]
    written = _written(out, [*files, "recommendation.json", "steering_card.html"]) + sorted(out.glob("*.png"))
    parts.append(paths_block(written))
    return "\n".join(parts)


def _arm(baseline: pd.DataFrame, method: str, arm: str) -> list[float]:
    rows = baseline[(baseline["method"] == method) & (baseline["arm"] == arm)]
    if rows.empty:
        return [np.nan, np.nan, np.nan]
    row = rows.iloc[0]
    return [float(row["shift"]), float(row["shift_lo"]), float(row["shift_hi"])]


def baseline_text(baseline: pd.DataFrame) -> str:
    """Steering vs the persona prompt, with a plain-words verdict."""
    steer, prompt = _arm(baseline, "steering", "pos"), _arm(baseline, "prompting", "pos")
    return render_table(
        baseline, "Prompting baseline: steering vs the SYS± persona prompt (shift vs the plain prompt)",
        ["method", "arm", "setting", "n_samples", "shift", "kl", "dnll", "format_mass"],
        labels=SIDE_LABELS, units=SIDE_UNITS,
        meaning=f"towards the behaviour, steering shifts the propensity by {format_interval(steer)} and the persona "
                f"prompt by {format_interval(prompt)}: {compare_phrase('steering', steer, 'the persona prompt', prompt)}.")


def tune_text(result, kl_budget: float, units: str) -> str:
    """The tune run: the layers × multipliers table, the recommendation in words, the baseline and the paths."""
    summary = result.summary
    parts = [render_table(
        summary, f"Layers × multipliers ({units} units): behaviour shift vs side effects on neutral text",
        ["layer", "multiplier", "raw_multiplier", "n_samples", "shift", "kl", "dnll", "format_mass"],
        labels=SIDE_LABELS, units=SIDE_UNITS,
        meaning=f"each row steers one layer at one strength. Shift is the paired change in propensity vs "
                f"multiplier 0 on the held-out samples; KL is how far the next-token distribution on neutral text "
                f"moves (nats/token, the cost). The recommendation is the largest shift whose KL upper limit stays "
                f"within the budget of {kl_budget:g}.")]
    rec = result.recommendation
    if rec.get("found"):
        parts.append(f"Recommended: layer {rec['layer']}, multiplier {rec['multiplier']:g} ({units}); shift "
                     f"{interval_phrase(rec['shift'], rec['shift_lo'], rec['shift_hi'])}; KL "
                     f"{format_ci(rec['kl'], rec.get('kl_lo', np.nan), rec['kl_hi'])} nats/token "
                     f"(upper limit within {kl_budget:g}).\n")
    else:
        parts.append(f"No recommendation: {rec['reason']}.\n")
    for note in result.notes:
        parts.append(f"Note: {note}\n")
    if result.baseline is not None and len(result.baseline):
        parts.append(baseline_text(result.baseline))
    if result.capability is not None and len(result.capability):
        parts.append(render_table(result.capability, "Capability under steering", ["dataset", "multiplier", "n_items",
                                                                                  "accuracy", "format_mass"],
                                  labels=SIDE_LABELS,
                                  meaning="accuracy with and without steering on the same items."))
    out = result.out_dir
    names = [f"{n}.{ext}" for n in ("summary", "baseline", "generations", "capability") for ext in ("parquet", "csv")]
    parts.append(paths_block(_written(out, [*names, "tune_pareto.png", "report.md", "recommendation.json",
                                            "steering_card.html"])))
    return "\n".join(parts)
