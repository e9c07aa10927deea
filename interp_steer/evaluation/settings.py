"""Which steering setting to use: the per-(layer, multiplier) summary of shift and side effects, the recommendation
within a KL budget, and the setting the post-run steps use (shared by the evaluate and tune jobs).

:func:`tune_summary` combines propensities, neutral-corpus side effects and A/B answer scores into one row per
(layer, multiplier) with bootstrap 95% intervals: ``shift`` (mean over samples of propensity(m) − propensity(0),
paired), ``kl``, ``dnll``, ``format_mass``. :func:`recommend` picks the setting with the largest positive shift whose
KL upper bound is within the budget; :func:`chosen_setting` falls back to the largest positive shift.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from interp_steer.errors import ConfigError
from interp_steer.evaluation.units import UNIT_COLUMNS
from interp_steer.stats.intervals import mean_interval

SUMMARY_METRICS = ("shift", "mean_propensity", "kl", "dnll", "format_mass")


def tune_summary(propensities: pd.DataFrame, neutral: pd.DataFrame, answers: pd.DataFrame | None = None, *,
                 n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (layer, multiplier): ``shift`` (paired: per sample propensity(m) − propensity(0), mean and
    bootstrap interval over samples), ``mean_propensity``, ``kl`` and ``dnll`` (over neutral passages),
    ``format_mass`` (over A/B samples; NaN for free text), each with ``_lo`` / ``_hi``, and the unit columns."""
    if 0.0 not in set(propensities["multiplier"]):
        raise ConfigError("tune_summary: the propensity table needs multiplier 0 (the unsteered reference)")
    records = []
    for (layer, m), group in propensities.groupby(["layer", "multiplier"], sort=True):
        ref = propensities[(propensities.layer == layer) & (propensities.multiplier == 0.0)].set_index("sample_id")["propensity"]
        prop = group.set_index("sample_id")["propensity"]
        rec = {"layer": int(layer), "multiplier": float(m), "n_samples": len(group)}
        rec.update({c: group[c].iloc[0] for c in UNIT_COLUMNS if c in group.columns})
        values = {"shift": (prop - ref.reindex(prop.index)).to_numpy(), "mean_propensity": prop.to_numpy()}
        side = neutral[(neutral.layer == layer) & (neutral.multiplier == m)]
        values["kl"], values["dnll"] = side["kl"].to_numpy(), side["dnll"].to_numpy()
        rec["n_passages"] = len(side)
        if answers is not None and len(answers):
            values["format_mass"] = answers[(answers.layer == layer) & (answers.multiplier == m)]["format_mass"].to_numpy()
        else:
            values["format_mass"] = np.array([])
        for name in SUMMARY_METRICS:
            mean, lo, hi = mean_interval(values[name], n_boot=n_boot, seed=seed)
            rec.update({name: mean, f"{name}_lo": lo, f"{name}_hi": hi})
        records.append(rec)
    return pd.DataFrame.from_records(records)


def recommend(summary: pd.DataFrame, kl_budget: float) -> dict:
    """The (layer, multiplier) with the largest positive ``shift`` among the non-zero multipliers whose ``kl_hi``
    (upper 95% limit of the mean KL) is ≤ ``kl_budget``.

    Returns ``{"found": True, "layer", "multiplier", "shift", "shift_lo", "shift_hi", "kl", "kl_hi", "units",
    "kl_budget", "reason"}``, or ``{"found": False, "reason": …}`` saying why no setting qualifies (nothing within
    the budget, or nothing within it moves the behaviour the positive way)."""
    missing = [c for c in ("layer", "multiplier", "shift", "kl_hi") if c not in summary.columns]
    if missing:
        raise ConfigError(f"recommend: the summary lacks columns {missing}")
    steered = summary[summary.multiplier != 0]
    within = steered[steered.kl_hi <= kl_budget]
    units = str(summary["units"].iloc[0]) if "units" in summary.columns and len(summary) else "raw"
    if within.empty:
        least = steered.loc[steered.kl_hi.idxmin()] if len(steered) else None
        reason = (f"no steered setting has its KL upper 95% limit within the budget of {kl_budget:g} nats/token"
                  + (f" (the smallest is {least.kl_hi:.3g} at layer {int(least.layer)}, multiplier {least.multiplier:g})"
                     if least is not None else ""))
        return {"found": False, "kl_budget": kl_budget, "units": units, "reason": reason}
    positive = within[within["shift"] > 0]
    if positive.empty:
        return {"found": False, "kl_budget": kl_budget, "units": units,
                "reason": f"{len(within)} setting(s) are within the KL budget of {kl_budget:g}, but none shifts "
                          "the behaviour in the positive direction"}
    best = positive.loc[positive["shift"].idxmax()]
    out = {"found": True, "layer": int(best.layer), "multiplier": float(best.multiplier), "units": units,
           "kl_budget": kl_budget}
    for name in ("shift", "shift_lo", "shift_hi", "kl", "kl_lo", "kl_hi", "dnll", "format_mass"):
        if name in best.index:
            out[name] = None if pd.isna(best[name]) else float(best[name])
    shift_lo = out.get("shift_lo")
    out["shift_excludes_zero"] = bool(isinstance(shift_lo, float) and shift_lo > 0)
    out["reason"] = (f"largest shift ({out['shift']:.3g}) among {len(within)} steered setting(s) whose KL upper "
                     f"95% limit is within {kl_budget:g} nats/token"
                     + ("" if out["shift_excludes_zero"] else "; its 95% interval includes 0, so the shift is not "
                        "distinguishable from none at this sample size"))
    return out


def chosen_setting(summary: pd.DataFrame | None, rec: dict) -> tuple[int, float] | None:
    """The recommended ``(layer, multiplier)``, else (said in the reports) the positive multiplier with the largest
    ``shift``; ``None`` when no positive multiplier was evaluated."""
    if rec.get("found"):
        return rec["layer"], rec["multiplier"]
    if summary is None:
        return None
    positive = summary[summary.multiplier > 0]
    if positive.empty:
        return None
    best = positive.loc[positive["shift"].idxmax()]
    return int(best.layer), float(best.multiplier)
