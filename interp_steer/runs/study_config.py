"""The Tan et al. (2024) study's configuration, presets and pure steps, shared by the study runner
(:mod:`interp_steer.runs.study`), its report writers (``study_report*.py``), the report-only rebuild and the
cross-model comparison: ``StudyConfig``, ``preset_config``, the scan hold-out, the layer rule, headline rows, the
timings file of finished units and the unit-table readers. Nothing here runs a model or imports the runner's jobs at
module level, so the report modules import this and never the runner.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import pandas as pd

from interp_steer.config import (
    COARSE_MULTIPLIERS,
    TAN_MULTIPLIERS,
    JobConfig,
    require_choice,
    require_fraction,
    require_int,
    require_multipliers,
)
from interp_steer.errors import ConfigError
from interp_steer.models.embedded import DEFAULT_MODEL
from interp_steer.runs.files import read_table, write_table_atomic

PRESETS = ("tiny", "small", "full")
FRAMINGS = ("ab", "free_text")
SLOPE_UNITS = {"ab": "logits per unit multiplier", "free_text": "nats per unit multiplier"}
PROPENSITY_UNITS = {"ab": "logits", "free_text": "nats"}
FRAMING_LABELS = {"ab": "A/B (logit difference of the answer letters)",
                  "free_text": "free text (log-prob difference of the completions)"}
SCAN_PERSONAS = ("narcissism", "agreeableness", "desire-for-acquiring-power",
                 "believes-AIs-are-not-an-existential-threat-to-humanity", "politically-liberal",
                 "subscribes-to-Christianity", "interest-in-music", "risk-seeking")
"""Persona sets the scan of the ``small`` and ``full`` presets uses (both framings): personality, power seeking,
AI-risk beliefs, politics, religion, interests, decision making."""
ID_OOD_PERSONAS = SCAN_PERSONAS + ("conscientiousness", "psychopathy", "believes-it-has-phenomenal-consciousness",
                                   "willingness-to-use-social-engineering-to-achieve-its-goals", "anti-immigration")
STEER_UNITS = {"anti_steerable_fraction": "share of samples"}
PER_TOKEN_SLOPE_UNITS = "nats per token per unit multiplier"
HEADLINE_COLUMNS = ["section", "group", "statistic", "units", "estimate", "ci_low", "ci_high", "n_samples",
                    "n_datasets", "method"]


@dataclass
class StudyConfig(JobConfig):
    """Everything the study computes; saved as ``out/config.json``. Built by :func:`preset_config`.

    ``scan_layers``: the layers the scan covers (``[]``: every layer of the model). ``datasets``: the
    steerability study's dataset specs (``persona:x`` A/B, ``persona:x@free_text``, ``xrisk:y``).
    ``id_ood_datasets``: persona names for the ID/OOD grid in ``id_ood_framing``. ``selection_size``: how many
    datasets the violin and propensity-curve figures show per framing. ``n_boot``: bootstrap resamples per interval.
    """

    OPTION_NAMES: ClassVar[dict[str, str]] = {
        name: "--preset" for name in ("scan_datasets", "scan_multipliers", "scan_n_train", "scan_n_test", "layer_framing", "datasets",
                                      "test_fraction", "id_ood_datasets", "id_ood_framing", "id_ood_multipliers",
                                      "id_ood_n_train", "id_ood_n_test", "table_format")}
    RESULT_FIELDS: ClassVar[tuple[str, ...]] = (
        "model", "scan_datasets", "scan_layers", "scan_multipliers", "scan_n_train", "scan_n_test", "layer_framing",
        "datasets", "multipliers", "n_train", "n_test", "test_fraction", "seed", "id_ood_datasets", "id_ood_framing",
        "id_ood_multipliers", "id_ood_n_train", "id_ood_n_test", "table_format",
    )
    JOB: ClassVar[str] = "study tan2024"

    model: str
    preset: str
    scan_datasets: list[str]
    scan_layers: list[int]
    datasets: list[str]
    id_ood_datasets: list[str]
    scan_multipliers: list[float] = field(default_factory=lambda: list(COARSE_MULTIPLIERS))
    scan_n_train: int = 16
    scan_n_test: int = 8
    layer_framing: str = "free_text"
    multipliers: list[float] = field(default_factory=lambda: list(TAN_MULTIPLIERS))
    n_train: int | None = 50
    n_test: int | None = 50
    test_fraction: float = 0.5
    seed: int = 0
    id_ood_framing: str = "free_text"
    id_ood_multipliers: list[float] = field(default_factory=lambda: list(TAN_MULTIPLIERS))
    id_ood_n_train: int | None = 50
    id_ood_n_test: int | None = 50
    selection_size: int = 13
    n_boot: int = 2000
    batch_size: int = 32
    table_format: str = "csv"
    device: str = "cpu"

    def __post_init__(self) -> None:
        from interp_steer.data.registry import parse_spec

        require_choice(self, "preset", PRESETS)
        for name in ("scan_multipliers", "multipliers", "id_ood_multipliers"):
            require_multipliers(self, name, zero=True, why_zero="the unsteered baseline")
        self.scan_layers = [int(x) for x in self.scan_layers]
        if min(self.scan_layers, default=0) < 0 or len(set(self.scan_layers)) != len(self.scan_layers):
            raise ConfigError(f"StudyConfig.scan_layers must be distinct non-negative layers ([] = all), got {self.scan_layers}")
        for name in ("scan_datasets", "datasets", "id_ood_datasets"):
            values = list(getattr(self, name))
            setattr(self, name, values)
            if not values or len(set(values)) != len(values):
                raise ConfigError(f"StudyConfig.{name} must name at least one dataset, each once, got {values[:5]}")
        for spec in self.scan_datasets + self.datasets:
            parse_spec(spec)
        if self.layer_framing not in FRAMINGS or self.id_ood_framing not in FRAMINGS:
            raise ConfigError(f"layer / ID-OOD framing must be one of {FRAMINGS}, got {self.layer_framing!r}, "
                              f"{self.id_ood_framing!r}")
        in_framing = [s for s in self.scan_datasets if parse_spec(s)[2] == self.layer_framing]
        if len(in_framing) < 2:
            raise ConfigError(f"the layer scan needs ≥ 2 datasets in the {self.layer_framing} framing for an "
                              f"across-dataset interval, got {in_framing}")
        for name in ("scan_n_train", "scan_n_test", "n_train", "n_test", "id_ood_n_train", "id_ood_n_test",
                     "selection_size", "batch_size"):
            require_int(self, name, optional=True)
        require_int(self, "n_boot", 100)
        require_fraction(self, "test_fraction")
        require_choice(self, "table_format", ("csv", "parquet"))

    @classmethod
    def option_label(cls, name: str) -> str:
        """Validation messages name a field the preset sets as ``StudyConfig.<field> (set by --preset)``."""
        if cls.OPTION_NAMES.get(name) == "--preset":
            return f"StudyConfig.{name} (set by --preset)"
        return cls.option_name(name)


def preset_config(preset: str, *, model: str = DEFAULT_MODEL, data_dir: str | Path | None = None, seed: int = 0,
                  **overrides: Any) -> StudyConfig:
    """The study's settings for ``preset``:

    * ``tiny`` (CI, minutes on the embedded model): 2 persona sets × 2 framings + 1 xrisk set, 8 train / 6 test
      pairs, a 3-layer scan of 2 free-text sets, ID/OOD on 2 sets with 2 test pairs, 200 bootstrap resamples;
    * ``small``: 13 persona sets in both framings + 4 xrisk sets, 30 / 30 pairs, 8-set scan of every 3rd layer,
      ID/OOD on 5 sets;
    * ``full``: every MWE A/B dataset (135 persona + 17 advanced-AI-risk = 152) and every persona set in free text,
      50 train / 50 test pairs (all available where fewer), the paper's 7 multipliers; the scan covers every
      layer on the 8 :data:`SCAN_PERSONAS` sets in both framings (30 train-part pairs for CAA, the next 20 scored);
      ID/OOD on the 13 :data:`ID_OOD_PERSONAS` sets in free text, 50 train / 25 test pairs (the 25-cell grid costs
      25 evaluations per dataset, so its test size is halved to keep the stage within about a day of CPU).

    ``overrides`` replace any :class:`StudyConfig` field. Unknown presets are a ConfigError.
    """
    from interp_steer.runs.steerability import mwe_study_datasets

    if preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r}: use one of {', '.join(PRESETS)}")
    both = lambda names: [f"persona:{n}" for n in names] + [f"persona:{n}@free_text" for n in names]  # noqa: E731
    if preset == "tiny":
        settings: dict[str, Any] = dict(
            scan_datasets=["persona:narcissism@free_text", "persona:agreeableness@free_text"], scan_layers=[6, 15, 24],
            scan_n_train=6, scan_n_test=4, datasets=both(["narcissism", "agreeableness"]) + ["xrisk:survival-instinct"],
            n_train=8, n_test=6, id_ood_datasets=["narcissism", "agreeableness"], id_ood_multipliers=[-1.5, 0.0, 1.5],
            id_ood_n_train=4, id_ood_n_test=2, n_boot=200, selection_size=13)
    elif preset == "small":
        names = list(ID_OOD_PERSONAS)
        xrisk = ["xrisk:survival-instinct", "xrisk:power-seeking-inclination", "xrisk:corrigible-neutral-HHH",
                 "xrisk:wealth-seeking-inclination"]
        settings = dict(scan_datasets=both(SCAN_PERSONAS), scan_layers=list(range(0, 30, 3)), scan_n_train=16,
                        scan_n_test=8, datasets=both(names) + xrisk, n_train=30, n_test=30,
                        id_ood_datasets=names[:5], id_ood_n_train=20, id_ood_n_test=12)
    else:
        settings = dict(scan_datasets=both(SCAN_PERSONAS), scan_layers=[], scan_n_train=30, scan_n_test=20,
                        datasets=mwe_study_datasets(seed, data_dir), n_train=50, n_test=50,
                        id_ood_datasets=list(ID_OOD_PERSONAS), id_ood_n_train=50, id_ood_n_test=25)
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return StudyConfig(model=model, preset=preset, seed=seed, **settings)


@dataclass(frozen=True)
class ScanHoldout:
    """The layer scan's data, from the *train* part of each dataset's study split only: CAA on its first ``n_train``
    pairs (at most half of it), scored on the next ``n_test``. Picklable (Ray workers load their own data)."""

    test_fraction: float
    seed: int
    n_train: int
    n_test: int
    data_dir: str | None = None

    def __call__(self, spec: str):
        from interp_steer.data import DataSplit, load_dataset

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the xrisk loaders warn about skipped multi-choice rows
            pairs = load_dataset(spec, data_dir=self.data_dir)
        train = DataSplit(self.test_fraction, self.seed).train(pairs)
        n_fit = min(self.n_train, len(train) // 2)
        return train[:n_fit], train[n_fit:n_fit + self.n_test]


# ------------------------------------------------------------------------------------------------ pure steps
def framing_of(spec: str) -> str:
    """``"ab"`` or ``"free_text"``: the framing of a dataset spec."""
    from interp_steer.data.registry import parse_spec

    return parse_spec(spec)[2]


def layer_profile(scan_per_sample: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Mean / median steerability and anti-steerable fraction per (framing, layer) across the scan's datasets,
    with two-level bootstrap intervals (:func:`~interp_steer.evaluation.steerability_cis`)."""
    from interp_steer.evaluation import steerability_cis

    frame = scan_per_sample.assign(framing=scan_per_sample["dataset"].map(framing_of))
    return steerability_cis(frame, by=("framing", "layer"), levels=("across_datasets",), n_boot=n_boot, seed=seed)


def choose_layer(profile: pd.DataFrame, framing: str) -> dict[str, Any]:
    """The layer with the largest across-dataset ``mean_slope`` in ``framing`` (ties → lower layer), with its
    estimate, interval and sizes; a ConfigError if the profile has no such rows."""
    rows = profile[(profile["statistic"] == "mean_slope") & (profile["framing"] == framing)]
    if rows.empty:
        raise ConfigError(f"choose_layer: the scan profile has no across-dataset rows in the {framing} framing")
    rows = rows.sort_values("layer", kind="stable")
    best = rows.loc[rows["estimate"].idxmax()]
    return {"layer": int(best["layer"]), "framing": framing,
            "rule": f"argmax over layers of the mean over datasets of the per-dataset mean {framing} steerability; "
                    "ties → lower layer",
            "estimate": float(best["estimate"]), "ci_low": float(best["ci_low"]), "ci_high": float(best["ci_high"]),
            "n_samples": int(best["n_samples"]), "n_datasets": int(best["n_datasets"]), "units": SLOPE_UNITS[framing]}


def select_datasets(summary: pd.DataFrame, k: int = 13, by: str = "mean_slope") -> list[str]:
    """``k`` datasets spread evenly over the ranks of ``by`` (lowest, highest and evenly spaced ones between; all if
    there are at most ``k``), returned in rank order: a selection that shows the whole range, not the best ones."""
    order = summary.sort_values([by, "dataset"], kind="stable")["dataset"].tolist()
    if len(order) <= k:
        return order
    picks = sorted({int(round(i)) for i in np.linspace(0, len(order) - 1, k)})
    return [order[i] for i in picks]


def format_ci(estimate: float, low: float, high: float, digits: int = 3) -> str:
    """``"0.123 [0.045, 0.201]"`` (the estimate and its interval, fixed decimals); scientific notation
    (``"1.23e-04 [4.50e-05, 2.01e-04]"``) when every nonzero value is below ``10**(1 - digits)`` in magnitude, so a
    small number never prints as ``0.000``."""
    values = [abs(v) for v in (estimate, low, high) if np.isfinite(v) and v != 0]
    if values and max(values) < 10.0 ** (1 - digits):
        return f"{estimate:.{digits - 1}e} [{low:.{digits - 1}e}, {high:.{digits - 1}e}]"
    return f"{estimate:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def headline_rows(table: pd.DataFrame, section: str, group: str, units: str | dict[str, str],
                  statistics: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows of a tidy interval table (``RESULT_COLUMNS``) as :data:`HEADLINE_COLUMNS` rows; ``units`` per statistic
    (a dict) or one string for all."""
    rows = table if statistics is None else table[table["statistic"].isin(statistics)]
    finite = np.isfinite(rows[["estimate", "ci_low", "ci_high"]].to_numpy(dtype=float)).all(axis=1)
    rows = rows[finite]  # a statistic without an interval (e.g. a correlation of one point per dataset) is no headline
    unit_of = (lambda s: units.get(s, "")) if isinstance(units, dict) else (lambda s: units)
    return pd.DataFrame({"section": section, "group": group, "statistic": rows["statistic"].to_numpy(),
                         "units": [unit_of(s) for s in rows["statistic"]], "estimate": rows["estimate"].to_numpy(),
                         "ci_low": rows["ci_low"].to_numpy(), "ci_high": rows["ci_high"].to_numpy(),
                         "n_samples": rows["n_samples"].to_numpy(), "n_datasets": rows["n_datasets"].to_numpy(),
                         "method": rows["method"].to_numpy()}, columns=HEADLINE_COLUMNS)


def headline_markdown(headline: pd.DataFrame, section: str) -> list[str]:
    """One bullet per headline row of ``section``: statistic, estimate [95% CI], units and n."""
    lines = []
    for row in headline[headline["section"] == section].itertuples():
        n = f"n = {int(row.n_samples)} samples, {int(row.n_datasets)} dataset{'s' if row.n_datasets != 1 else ''}"
        units = f" {row.units}" if row.units else ""
        lines.append(f"- {row.group}: **{row.statistic}** = {format_ci(row.estimate, row.ci_low, row.ci_high)}"
                     f"{units} (95% CI, {row.method}; {n})")
    return lines


def unsteered_table(id_ood_per_sample: pd.DataFrame) -> pd.DataFrame:
    """The multiplier-0 propensity rows :func:`~interp_steer.evaluation.relative_steerability_table` needs, from
    the ID/OOD per-sample table's ``unsteered_propensity`` column (one row per dataset, variant, sample)."""
    if "unsteered_propensity" not in id_ood_per_sample.columns:
        raise ConfigError("the ID/OOD per-sample table has no unsteered_propensity column (run with full_grid and a "
                          "0 multiplier)")
    keep = [c for c in ("dataset", "variant", "sample_id", "kind", "unsteered_propensity") if c in id_ood_per_sample]
    rows = id_ood_per_sample[keep].drop_duplicates(subset=["dataset", "variant", "sample_id"])
    return rows.rename(columns={"unsteered_propensity": "propensity"}).assign(multiplier=0.0).reset_index(drop=True)


class UnitClock:
    """Appends one line per finished unit to ``out/timings.jsonl``: stage, unit key, wall and CPU seconds of this
    process since the previous line (CPU: ``time.process_time``, the in-process compute of the local executor),
    so the study's total compute survives kills and resumes (:func:`compute_totals`)."""

    def __init__(self, path: Path, stage: str) -> None:
        self.path, self.stage = path, stage
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def __call__(self, unit) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        line = {"stage": self.stage, "unit": unit.key, "wall_s": round(wall - self.wall, 3),
                "cpu_s": round(cpu - self.cpu, 3), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
        self.wall, self.cpu = wall, cpu


def _unit_lines(path: Path) -> pd.DataFrame:
    """One row per (stage, unit) of ``timings.jsonl`` (a unit's last line), ``cpu_s`` replaced by the runner's own
    record where ``<stage>/unit_timings.jsonl`` has one (``runner`` True there); empty if there is no line."""
    lines = ([json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
             if path.exists() else [])
    if not lines:
        return pd.DataFrame()
    frame = pd.DataFrame(lines).drop_duplicates(subset=["stage", "unit"], keep="last")
    frame["runner"] = False
    for stage in frame["stage"].unique():
        runner_file = path.parent / stage / "unit_timings.jsonl"
        if not runner_file.exists():
            continue
        recorded = [json.loads(x) for x in runner_file.read_text(encoding="utf-8").splitlines() if x.strip()]
        cpu = {r["unit"]: float(r["cpu_s"]) for r in recorded}  # the last line of a unit wins
        rows = (frame["stage"] == stage) & frame["unit"].isin(list(cpu))
        frame.loc[rows, "cpu_s"] = frame.loc[rows, "unit"].map(cpu)
        frame.loc[rows, "runner"] = True
    return frame


def compute_totals(path: Path) -> pd.DataFrame:
    """Per stage: units timed, wall and CPU seconds summed over every invocation's ``timings.jsonl`` lines (a unit
    computed twice, e.g. once killed before its files were complete and once again, counts once: its last line).

    ``cpu_s`` is the unit's own compute where the runner recorded it (``<stage>/unit_timings.jsonl`` beside
    ``timings.jsonl``: the CPU of the process that ran the unit, a Ray worker included), else the driving
    process's CPU from ``timings.jsonl``, which misses a Ray worker's. ``cpu_units`` counts the units whose CPU
    came from the runner's file."""
    columns = ["stage", "units", "wall_s", "cpu_s", "cpu_units"]
    frame = _unit_lines(path)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame["cpu_units"] = frame["runner"].astype(int)
    totals = frame.groupby("stage", sort=False).agg(units=("unit", "size"), wall_s=("wall_s", "sum"),
                                                     cpu_s=("cpu_s", "sum"), cpu_units=("cpu_units", "sum")).reset_index()
    return totals[columns]


def estimated_cpu(path: Path) -> pd.DataFrame:
    """Per stage: the units' CPU seconds where measured, and an estimate for every unit.

    A unit counts as measured when the runner recorded its CPU (``<stage>/unit_timings.jsonl``) or when the driving
    process's CPU in ``timings.jsonl`` is at least a tenth of its wall time (a local unit, one thread); a unit the
    driver only waited for (a Ray unit before the runner kept its own record) is not. ``cpu_s_estimated`` adds, for
    each unmeasured unit, the mean of the measured units of its stage and framing (``@free_text`` in the unit key
    or not), since the two framings differ in cost."""
    columns = ["stage", "units", "measured_units", "cpu_s_measured", "cpu_s_estimated", "wall_s"]
    frame = _unit_lines(path)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame["measured"] = frame["runner"] | (frame["cpu_s"] >= 0.1 * frame["wall_s"])
    frame["kind"] = frame["unit"].astype(str).str.contains("free_text")
    means = frame[frame["measured"]].groupby(["stage", "kind"])["cpu_s"].mean()
    frame["estimate"] = [c if m else means.get((st, k), float("nan"))
                         for c, m, st, k in zip(frame["cpu_s"], frame["measured"], frame["stage"], frame["kind"])]
    frame["cpu_measured"] = frame["cpu_s"].where(frame["measured"], 0.0)
    totals = frame.groupby("stage", sort=False).agg(
        units=("unit", "size"), measured_units=("measured", "sum"), cpu_s_measured=("cpu_measured", "sum"),
        cpu_s_estimated=("estimate", lambda v: v.sum(min_count=len(v))), wall_s=("wall_s", "sum")).reset_index()
    return totals[columns]


def read_unit_propensities(out_dir: Path, steer_config, framing: str) -> pd.DataFrame:
    """The propensity rows of every finished steerability unit of ``framing`` (the job's unit files)."""
    from interp_steer.runs.steerability import finished_units

    fmt = steer_config.table_format
    frames = [read_table(out_dir / "units" / f"{u.key}.propensity.{fmt}")
              for u in finished_units(out_dir, steer_config) if u.framing == framing]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def save_table(frame: pd.DataFrame, out_dir: Path, name: str) -> str:
    """Write ``frame`` as ``out_dir/tables/<name>.csv``; returns the path relative to ``out_dir``."""
    rel = f"tables/{name}.csv"
    write_table_atomic(frame, out_dir / rel)
    return rel


def units_of(framing: str) -> dict[str, str]:
    """Units of the steerability statistics of ``framing``."""
    return {**{s: SLOPE_UNITS[framing] for s in ("mean_slope", "median_slope")}, **STEER_UNITS}
