"""``tune`` as a runner job: scan layers × multipliers for behaviour shift and side effects, recommend a setting.

One work unit per layer (:class:`TuneUnit`). A unit takes the layer's vector (CAA on the train split, or the
layer's direction from a given vector file), expresses it in the chosen multiplier units
(:mod:`interp_steer.evaluation.units`), and on the **held-out** split computes with the fast engine the
propensity at every multiplier, plus the neutral-corpus KL / ΔNLL at every multiplier and, for A/B data, the
answer-format mass. Its files::

    units/L012.vector.safetensors   the vector as steered (rescaled for --units norm)
    units/L012.neutral.<fmt>        kl, dnll per (passage, multiplier)
    units/L012.answers.<fmt>        format_mass per (A/B sample, multiplier) (no rows for free text)
    units/L012.propensity.<fmt>     propensities per (sample, multiplier)   (last: marks the unit done)

:func:`tune_summary` combines them into one row per (layer, multiplier) with bootstrap 95% intervals:
``shift`` (mean over samples of propensity(m) − propensity(0), paired), ``kl``, ``dnll``, ``format_mass``.
:func:`recommend` picks the setting with the largest positive shift whose KL upper bound is within the budget.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from interp_steer.config import JobConfig  # noqa: F401
from interp_steer.errors import ConfigError, DataFormatError
from interp_steer.evaluation.side_effects import (
    NeutralSet,
    answer_scores,
    neutral_side_effects,
    prepare_neutral,
)
from interp_steer.evaluation.units import UNIT_COLUMNS, in_units, mean_residual_norm, with_units
from interp_steer.runs.files import read_table, write_table_atomic, write_text_atomic
from interp_steer.runs.job_configs import TuneConfig  # noqa: F401
from interp_steer.runs.runner import Job, RunReport, UnitFiles, run_job
from interp_steer.runs.scan import RegistryPairs
from interp_steer.stats.intervals import mean_interval
from interp_steer.steering.hook_names import DEFAULT_SITE
from interp_steer.steering.vector import SteeringVector

SUMMARY_METRICS = ("shift", "mean_propensity", "kl", "dnll", "format_mass")


@dataclass(frozen=True)
class TuneUnit:
    """One layer of a tune run."""

    layer: int

    @property
    def key(self) -> str:
        return f"L{self.layer:03d}"


class TuneJob(Job):
    """The tune scan on the runner (see the module docstring). ``data``: a function or mapping giving the
    ``(train_pairs, test_pairs)`` of the config's dataset (default: the registry with the config's split)."""

    config: TuneConfig

    def __init__(self, config: TuneConfig, data: Callable | Mapping | None = None, data_dir: str | None = None) -> None:
        self.config = config
        self.data = data if data is not None else RegistryPairs(config.framing, config.test_fraction, config.seed,
                                                                config.n_train, config.n_test, data_dir)
        self._neutral: NeutralSet | None = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_neutral"] = None  # recomputed by each worker
        return state

    def units(self) -> list[TuneUnit]:
        return [TuneUnit(layer) for layer in self.config.layers]

    def _files(self, unit: TuneUnit) -> dict[str, str]:
        fmt = self.config.table_format
        return {"vector": f"units/{unit.key}.vector.safetensors", "neutral": f"units/{unit.key}.neutral.{fmt}",
                "answers": f"units/{unit.key}.answers.{fmt}", "propensity": f"units/{unit.key}.propensity.{fmt}"}

    def unit_files(self, unit: TuneUnit) -> list[str]:
        return list(self._files(unit).values())

    def pairs(self):
        data = self.data
        return data[self.config.dataset] if isinstance(data, Mapping) else data(self.config.dataset)

    def neutral(self, model) -> NeutralSet:
        if self._neutral is None:
            self._neutral = prepare_neutral(model, n=self.config.n_neutral,
                                            continuation_tokens=self.config.continuation_tokens,
                                            batch_size=self.config.batch_size)
        return self._neutral

    def layer_vector(self, unit: TuneUnit, model, train) -> SteeringVector:
        cfg = self.config
        if cfg.vector is not None:
            return SteeringVector.load(cfg.vector).select(unit.layer)
        from interp_steer.methods.caa import extract_caa

        if not train:
            raise ConfigError(f"dataset {cfg.dataset!r}: the train split is empty; lower --test-fraction")
        return extract_caa(model, train, [unit.layer], batch_size=cfg.batch_size, progress=False, dataset=cfg.dataset)

    def compute(self, unit: TuneUnit, model) -> UnitFiles:
        cfg = self.config
        train, test = self.pairs()
        if not test:
            raise ConfigError(f"dataset {cfg.dataset!r}: the held-out split is empty")
        neutral = self.neutral(model)
        vector = self.layer_vector(unit, model, train)
        vector.check_fits(model)
        hook = vector.hook_names[0]
        reference = mean_residual_norm(model, [hook], list(neutral.tokens))[hook] if cfg.units == "norm" else None
        scaled = in_units(vector, cfg.units, reference)
        steered = scaled.vector.to(model.cfg.device, dtype=model.cfg.dtype)
        if hook.endswith("." + DEFAULT_SITE):
            from interp_steer.evaluation.fast_engine import fast_propensities

            props = fast_propensities(model, test, steered, cfg.multipliers, progress=False,
                                      vector_name=f"tune:{cfg.dataset}")
        else:
            from interp_steer.evaluation.propensity import compute_propensities

            props = compute_propensities(model, test, steered, cfg.multipliers, batch_size=cfg.batch_size,
                                         vector_name=f"tune:{cfg.dataset}")
        props["dataset"] = cfg.dataset
        side = neutral_side_effects(model, neutral, steered, cfg.multipliers, batch_size=cfg.batch_size)
        side.insert(0, "layer", unit.layer)
        if all(p.kind == "ab" for p in test):
            answers = answer_scores(model, test, steered, cfg.multipliers, batch_size=cfg.batch_size)
            answers["dataset"] = cfg.dataset
        else:
            answers = pd.DataFrame(columns=["sample_id", "dataset", "multiplier", "is_A", "logit_diff", "correct",
                                            "pos_prob", "format_mass"])
        answers.insert(0, "layer", unit.layer)
        files = self._files(unit)
        return [(files["vector"], scaled.vector), (files["neutral"], with_units(side, scaled)),
                (files["answers"], with_units(answers, scaled)), (files["propensity"], with_units(props, scaled))]

    def combine(self, out_dir: Path) -> dict[str, pd.DataFrame]:
        return combine_tune(out_dir, self.config)


def combine_tune(out_dir: str | Path, config: TuneConfig) -> dict[str, pd.DataFrame]:
    """Concatenate the finished units' tables and build the (layer, multiplier) summary with its recommendation;
    writes ``propensities``, ``neutral``, ``answers`` and ``summary`` tables into ``out_dir``."""
    out_dir = Path(out_dir)
    fmt = config.table_format
    tables: dict[str, list[pd.DataFrame]] = {"propensities": [], "neutral": [], "answers": []}
    job = TuneJob(config, data={})
    for unit in job.units():
        files = job._files(unit)
        if not (out_dir / files["propensity"]).exists():
            continue
        tables["propensities"].append(read_table(out_dir / files["propensity"]))
        tables["neutral"].append(read_table(out_dir / files["neutral"]))
        answers = read_table(out_dir / files["answers"])
        if len(answers):
            tables["answers"].append(answers)
    if not tables["propensities"]:
        raise DataFormatError(f"{out_dir} has no finished tune units yet")
    combined = {name: (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()) for name, frames in tables.items()}
    combined["summary"] = tune_summary(combined["propensities"], combined["neutral"], combined["answers"],
                                       n_boot=config.n_boot, seed=config.seed)
    for name, frame in combined.items():
        if len(frame.columns):
            write_table_atomic(frame, out_dir / f"{name}.{fmt}")
    rec = recommend(combined["summary"], config.kl_budget)
    write_text_atomic(json.dumps(rec, indent=2), out_dir / "recommendation.json")
    return combined


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


def run_tune_job(config: TuneConfig, out_dir: str | Path, *, model=None, executor=None, data=None,
                 data_dir: str | None = None, progress: bool = True) -> RunReport:
    """Run the tune scan through the runner; the report's ``tables`` are ``{"propensities", "neutral", "answers",
    "summary"}`` (and ``recommendation.json`` is written). Failed units are in ``report.failed``."""
    return run_job(TuneJob(config, data=data, data_dir=data_dir), out_dir, executor=executor, model=model,
                   progress=progress)
