"""The evaluate job's work units, their files, and how the finished units combine into tables (units → tables).

The units and the combined tables are described in :mod:`interp_steer.runs.evaluate`; the job itself
(:class:`~interp_steer.runs.evaluate.EvaluateJob`) computes the units and calls :func:`combine_evaluation`.
Functions here read only the config fields of :class:`EvaluateSettings` (an
:class:`~interp_steer.runs.evaluate.EvaluateConfig` has them all).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from interp_steer.evaluation.units import UNIT_COLUMNS
from interp_steer.runs.files import read_table, write_table_atomic


@runtime_checkable
class EvaluateSettings(Protocol):
    """The config fields that define an evaluate run's units and tables."""

    vector_name: str
    random_baselines: int
    neutral_n: int
    capability: list[str]
    n_generations: int
    table_format: str
    units: str
    n_boot: int
    seed: int


@dataclass(frozen=True)
class EvaluateUnit:
    """The evaluated vector (``kind="vector"``), the norm-matched random vector of one seed (``"random"``), the
    neutral-corpus side effects (``"neutral"``), one capability set (``"capability"``, ``name`` mmlu /
    truthfulqa) or the generations (``"generations"``)."""

    seed: int | None = None
    kind: str = "vector"
    name: str = ""

    @property
    def key(self) -> str:
        if self.kind == "vector" and self.seed is not None:
            return f"random-{self.seed:03d}"
        if self.kind == "capability":
            return f"capability-{self.name}"
        return self.kind


def evaluate_units(config: EvaluateSettings) -> list[EvaluateUnit]:
    """Every unit of an evaluate run, in report order."""
    units = [EvaluateUnit(None), *(EvaluateUnit(s) for s in range(config.random_baselines))]
    if config.neutral_n:
        units.append(EvaluateUnit(kind="neutral"))
    units += [EvaluateUnit(kind="capability", name=name) for name in config.capability]
    if config.n_generations:
        units.append(EvaluateUnit(kind="generations"))
    return units


def evaluate_unit_files(config: EvaluateSettings, unit: EvaluateUnit) -> list[str]:
    """A unit's files relative to the output directory (the last one marks it done)."""
    fmt = config.table_format
    if unit.kind == "vector" and unit.seed is None:
        return ["units/vector.steered.safetensors", f"units/vector.answers.{fmt}", f"units/vector.propensity.{fmt}"]
    if unit.kind == "vector":
        return [f"units/{unit.key}.propensity.{fmt}"]
    return [f"units/{unit.key}.{fmt}"]


def _with_unit_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Tables written before multiplier units existed are raw."""
    if "units" in frame.columns or "multiplier" not in frame.columns:
        return frame
    return frame.assign(units="raw", reference_norm=np.nan, vector_norm=np.nan, raw_multiplier=frame["multiplier"])


def _read_units(out_dir: Path, config: EvaluateSettings, kind: str) -> pd.DataFrame | None:
    done = [out_dir / evaluate_unit_files(config, u)[-1] for u in evaluate_units(config) if u.kind == kind]
    frames = [read_table(p) for p in done if p.exists()]
    frames = [f for f in frames if len(f.columns)]
    return pd.concat(frames, ignore_index=True) if frames else None


def capability_summary(scores: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per (capability set, multiplier): ``accuracy`` and ``format_mass`` with bootstrap 95% intervals over items
    (as :func:`~interp_steer.evaluation.capability.capability_table`), plus the unit columns."""
    from interp_steer.evaluation.side_effects import summarize

    frame = scores.assign(accuracy=scores["correct"].astype(float))
    by = ["dataset", "layer", "multiplier", *[c for c in UNIT_COLUMNS if c in frame.columns]]
    return summarize(frame, ["accuracy", "format_mass"], by, n_boot=n_boot, seed=seed)


def steerability_intervals(per_sample: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per vector: mean per-sample slope and anti-steerable fraction (share of slopes < 0), each with a
    percentile-bootstrap 95% interval over samples."""
    from interp_steer.evaluation.side_effects import summarize

    frame = per_sample.assign(anti_steerable_fraction=(per_sample["slope"] < 0).astype(float))
    by = [c for c in ("dataset", "layer", "vector") if c in frame.columns]
    return summarize(frame, ["slope", "anti_steerable_fraction"], by, n_boot=n_boot, seed=seed).rename(
        columns={"slope": "mean_slope", "slope_lo": "mean_slope_lo", "slope_hi": "mean_slope_hi", "n_items": "n_samples"})


def combine_evaluation(out_dir: str | Path, config: EvaluateSettings) -> dict[str, pd.DataFrame]:
    """The finished units' tables (see the module docstring), written into ``out_dir``; ``{}`` while no
    propensity unit is finished."""
    from interp_steer.evaluation import spurious_factor_variance, steerability, summarize_steerability
    from interp_steer.evaluation.settings import tune_summary

    out_dir = Path(out_dir)
    props = _read_units(out_dir, config, "vector")
    if props is None:  # only side-effect units finished: nothing to combine yet (the failed units say why)
        return {}
    props = _with_unit_columns(props)
    per_sample = steerability(props.drop(columns=[c for c in UNIT_COLUMNS if c in props.columns]))
    tables = {"propensities": props, "per_sample": per_sample, "summary": summarize_steerability(per_sample)}
    own = per_sample[per_sample["vector"] == config.vector_name]
    if len(own) and own["is_A"].notna().any():
        tables["spurious"] = spurious_factor_variance(own)
    if len(own):
        tables["steerability_ci"] = steerability_intervals(own, n_boot=config.n_boot, seed=config.seed)
    answers_path = out_dir / f"units/vector.answers.{config.table_format}"
    answers = read_table(answers_path) if answers_path.exists() else None
    if answers is not None and len(answers):
        tables["answers"] = answers
    neutral = _read_units(out_dir, config, "neutral")
    if neutral is not None:
        tables["neutral"] = neutral
    own_props = props[props["vector"] == config.vector_name]
    if len(own_props) and 0.0 in set(own_props["multiplier"]):
        tables["side_effects"] = tune_summary(
            own_props, neutral if neutral is not None else pd.DataFrame(columns=["layer", "multiplier", "kl", "dnll"]),
            tables.get("answers"), n_boot=config.n_boot, seed=config.seed)
    capability = _read_units(out_dir, config, "capability")
    if capability is not None:
        tables["capability_items"] = capability
        tables["capability"] = capability_summary(capability, n_boot=config.n_boot, seed=config.seed)
    generations = _read_units(out_dir, config, "generations")
    if generations is not None:
        tables["generations"] = generations
    for name, frame in tables.items():
        if "units" not in frame.columns:  # slopes are per unit of multiplier: every table says which unit
            tables[name] = frame = frame.assign(units=config.units)
        write_table_atomic(frame, out_dir / f"{name}.{config.table_format}")
    return tables
