"""What ``interp-steer demo`` prints: its tables through :mod:`interp_steer.report.console` (one number rule,
intervals as ``"x [lo, hi]"``, units in the headers), each with a "what this means" paragraph."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from interp_steer.report.console import compare_phrase, interval_phrase, render_table
from interp_steer.report.format import format_ci, format_interval, format_value

PROPENSITY_UNITS = {"free_text": "nats", "ab": "logits"}


def propensity_by_multiplier(table: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
    """Mean propensity per multiplier with its percentile-bootstrap 95% interval over samples, and the median."""
    from interp_steer.stats.intervals import mean_interval

    rows = []
    for m, group in table.groupby("multiplier", sort=True):
        values = group["propensity"].to_numpy(dtype=np.float64)
        mean, lo, hi = mean_interval(values, n_boot=n_boot, seed=seed)
        rows.append({"multiplier": float(m), "n": len(values), "propensity": mean, "propensity_lo": lo,
                     "propensity_hi": hi, "median": float(np.median(values))})
    return pd.DataFrame(rows)


def propensity_text(pivot: pd.DataFrame, unit: str, layer: int) -> str:
    first, last = pivot.iloc[0], pivot.iloc[-1]
    direction = "rises" if last["propensity"] > first["propensity"] else "falls"
    return render_table(
        pivot, f"Propensity on {int(first['n'])} held-out pairs at layer {layer}",
        units={"propensity": unit, "median": unit}, labels={"propensity": "mean propensity"},
        meaning=f"the propensity (how much more likely the positive completion is than the negative one) "
                f"{direction} from {format_interval(first[['propensity', 'propensity_lo', 'propensity_hi']])} at "
                f"multiplier {first['multiplier']:+g} to {format_interval(last[['propensity', 'propensity_lo', 'propensity_hi']])} "
                f"at {last['multiplier']:+g}. The intervals are wide because pairs differ a lot in their unsteered "
                "propensity; the slope table below looks at each pair's change, which is more precise.")


def steerability_text(summary: pd.DataFrame, slope_unit: str, layer: int) -> str:
    row = summary[summary["layer"] == layer].iloc[0]
    best = summary.loc[summary["mean_slope"].idxmax()]
    return render_table(
        summary, "Per-layer steerability (slope of each pair's propensity on the multiplier)",
        ["layer", "n_samples", "mean_slope", "median_slope", "anti_steerable_fraction", "sign_flip_fraction", "mean_r2"],
        units={"mean_slope": slope_unit},
        labels={"n_samples": "n", "anti_steerable_fraction": "anti-steerable", "sign_flip_fraction": "sign flips",
                "mean_r2": "mean R²"},
        meaning=f"at the evaluation layer {layer} the propensity changes by "
                f"{interval_phrase(row['mean_slope'], row['mean_slope_lo'], row['mean_slope_hi'], slope_unit)} "
                f"(bootstrap over pairs). A fraction {format_ci(row['anti_steerable_fraction'], row['anti_steerable_lo'], row['anti_steerable_hi'])} "
                f"of the pairs move the wrong way (anti-steerable, Wilson interval: the pairs are independent). The steepest mean slope is at layer "
                f"{int(best['layer'])}.")


def distribution_text(distribution: pd.DataFrame, slope_unit: str) -> str:
    cols = ["layer", "n_samples", "min", "q10", "q25", "q50", "q75", "q90", "max"]
    return render_table(
        distribution, f"Per-pair steerability quantiles ({slope_unit})", cols, labels={"n_samples": "n"},
        meaning="the spread of the per-pair slopes: half of the pairs lie between q25 and q75. A distribution "
                "that straddles zero means the same vector pushes some pairs one way and others the other way.")


def side_effects_text(side: pd.DataFrame, unit: str, layer: int) -> str:
    top = side.loc[side["multiplier"].idxmax()]
    return render_table(
        side, f"Side effects at layer {layer} (shift vs multiplier 0; KL and ΔNLL on "
              f"{int(side['n_passages'].iloc[0])} neutral passages)",
        ["multiplier", "n_samples", "shift", "kl", "dnll"],
        units={"shift": unit, "kl": "nats/token", "dnll": "nats/token"},
        labels={"n_samples": "n", "kl": "KL", "dnll": "ΔNLL"},
        meaning=f"at multiplier {top['multiplier']:+g} the behaviour shifts by "
                f"{interval_phrase(top['shift'], top['shift_lo'], top['shift_hi'], unit)}, at a cost of "
                f"{format_ci(top['kl'], top['kl_lo'], top['kl_hi'])} nats/token KL from the unsteered model on "
                "neutral text (0 = no change; larger multipliers cost more).")


def baseline_text(baseline: pd.DataFrame, unit: str, multiplier: float | None, layer: int) -> str:
    def triple(method: str, arm: str) -> list[float]:
        row = baseline[(baseline["method"] == method) & (baseline["arm"] == arm)].iloc[0]
        return [float(row["shift"]), float(row["shift_lo"]), float(row["shift_hi"])]

    steer, prompt = triple("steering", "pos"), triple("prompting", "pos")
    return render_table(
        baseline, f"Prompting baseline: steering at ±{multiplier or 0:g} (layer {layer}) vs a persona system prompt",
        ["method", "arm", "setting", "n_samples", "shift", "kl", "dnll"],
        units={"shift": unit, "kl": "nats/token", "dnll": "nats/token"},
        labels={"n_samples": "n", "kl": "KL", "dnll": "ΔNLL"},
        meaning=f"towards the behaviour, steering shifts the propensity by {format_interval(steer)} and the SYS_POS "
                f"prompt by {format_interval(prompt)} {unit} (both vs the plain prompt): "
                f"{compare_phrase('steering', steer, 'the persona prompt', prompt)}.")


def print_findings(echo: Callable[[str], None], *, tables: dict, layer: int, framing: str, n_test: int,
                   baseline_multiplier: float | None, n_boot: int, seed: int) -> None:
    """Echo the demo's tables (see the module docstring)."""
    from interp_steer.runs.study_config import SLOPE_UNITS

    unit = PROPENSITY_UNITS.get(framing, "propensity units")
    slope_unit = SLOPE_UNITS.get(framing, "per unit multiplier")
    main = tables["table"][tables["table"]["layer"] == layer]
    echo("\n" + propensity_text(propensity_by_multiplier(main, n_boot, seed), unit, layer))
    echo(steerability_text(tables["summary"], slope_unit, layer))
    echo(distribution_text(tables["distribution"], slope_unit))
    if "side_effects" in tables:
        echo(side_effects_text(tables["side_effects"], unit, layer))
    baseline = tables.get("baseline")
    notes = [] if baseline is None else [n for n in baseline["note"].dropna().astype(str) if n]
    if notes:
        echo(notes[0])
    elif baseline is not None and len(baseline):
        echo(baseline_text(baseline, unit, baseline_multiplier, layer))
    del n_test  # the tables carry their own n


def vector_line(path, norm: float, method: str, n_pairs: int, dataset: str) -> str:
    return f"saved {path} (norm {format_value(norm)}; {method} on {n_pairs} {dataset} pairs)"
