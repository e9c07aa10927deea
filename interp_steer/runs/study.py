"""Tan et al. (2024)'s study as one resumable command: layer scan → chosen layer → steerability across datasets
(A/B and free text, with the unsteered A/B baseline and the spurious-factor variance split) → ID/OOD 5 × 5 grid →
one ``report.md`` with every figure and a 95% interval beside every headline number.

The stages are the existing runner jobs, each a resumable sub-run in its own subdirectory::

    out/config.json             the StudyConfig (a resume with other result-defining settings is refused)
    out/scan/                   ScanJob: CAA per (dataset, layer); layer choice from its bootstrap profile
    out/layer_choice.json       the chosen layer, the rule, its estimate and interval
    out/steerability/           SteerabilityJob at the chosen layer (units/<key>.propensity / .per_sample)
    out/id_ood/                 IdOodJob (full 5 × 5 grid, variant vectors rescaled to the BASE norm)
    out/tables/*.csv            the interval tables behind the report (headline.csv: every headline number)
    out/figures/*.png           the report's figures
    out/timings.jsonl           wall / CPU seconds per finished unit, over every invocation
    out/report.md               written last

**Disjoint samples.** Every dataset is split once, by the registry's stratified
``train_test_split(test_fraction, seed)``. The steerability and ID/OOD evaluations score the first ``n_test``
pairs of the *test* part. The layer scan (:class:`ScanHoldout`) extracts its vectors from the first
``scan_n_train`` pairs of the *train* part and scores the next ``scan_n_test`` train pairs, so the layer is chosen
on samples the evaluation never scores.

**Layer rule** (:func:`choose_layer`): the scanned layer with the largest mean over datasets of the per-dataset
mean steerability in ``layer_framing`` (ties → the lower layer); its two-level bootstrap interval is reported.

Rerunning the same command reuses every finished unit of every stage (the runner's unit files), so a killed run
resumes where it stopped; the report is rebuilt from the finished tables each time.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import pandas as pd

from interp_steer.errors import ConfigError
from interp_steer.models.embedded import DEFAULT_MODEL
from interp_steer.runs.config import JobConfig
from interp_steer.runs.files import read_table, write_table_atomic, write_text_atomic
from interp_steer.runs.scan import DEFAULT_MULTIPLIERS

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
    scan_multipliers: list[float] = field(default_factory=lambda: [-1.5, 0.0, 1.5])
    scan_n_train: int = 16
    scan_n_test: int = 8
    layer_framing: str = "free_text"
    multipliers: list[float] = field(default_factory=lambda: list(DEFAULT_MULTIPLIERS))
    n_train: int | None = 50
    n_test: int | None = 50
    test_fraction: float = 0.5
    seed: int = 0
    id_ood_framing: str = "free_text"
    id_ood_multipliers: list[float] = field(default_factory=lambda: list(DEFAULT_MULTIPLIERS))
    id_ood_n_train: int | None = 50
    id_ood_n_test: int | None = 50
    selection_size: int = 13
    n_boot: int = 2000
    batch_size: int = 32
    table_format: str = "csv"
    device: str = "cpu"

    def __post_init__(self) -> None:
        from interp_steer.data.registry import parse_spec

        if self.preset not in PRESETS:
            raise ConfigError(f"--preset {self.preset!r}: use one of {', '.join(PRESETS)}")
        for name in ("scan_multipliers", "multipliers", "id_ood_multipliers"):
            values = [float(m) for m in getattr(self, name)]
            setattr(self, name, values)
            if len(values) < 2 or len(set(values)) != len(values) or not any(m == 0.0 for m in values):
                raise ConfigError(f"StudyConfig.{name} needs ≥ 2 distinct values including 0 (the unsteered "
                                  f"baseline), got {values}")
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
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"StudyConfig.{name} must be ≥ 1, got {value}")
        if self.n_boot < 100:
            raise ConfigError(f"--n-boot must be ≥ 100, got {self.n_boot}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"StudyConfig.test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.table_format not in ("csv", "parquet"):
            raise ConfigError(f"StudyConfig.table_format must be 'csv' or 'parquet', got {self.table_format!r}")


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
        from interp_steer.data import load_dataset, train_test_split

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the xrisk loaders warn about skipped multi-choice rows
            pairs = load_dataset(spec, data_dir=self.data_dir)
        train, _ = train_test_split(pairs, test_fraction=self.test_fraction, seed=self.seed)
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


# ------------------------------------------------------------------------------------------------ running
@dataclass
class StudyResult:
    """What :func:`run_study` produced: the chosen layer, the headline table, the figure files and timings."""

    out_dir: Path
    layer: dict[str, Any]
    headline: pd.DataFrame
    figures: list[str]
    stage_seconds: dict[str, float]
    complete: bool


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


def compute_totals(path: Path) -> pd.DataFrame:
    """Per stage: units timed, wall and CPU seconds summed over every invocation's ``timings.jsonl`` lines (a unit
    computed twice, e.g. once killed before its files were complete and once again, counts once: its last line).

    ``cpu_s`` is the unit's own compute where the runner recorded it (``<stage>/unit_timings.jsonl`` beside
    ``timings.jsonl``: the CPU of the process that ran the unit, a Ray worker included), else the driving
    process's CPU from ``timings.jsonl``, which misses a Ray worker's. ``cpu_units`` counts the units whose CPU
    came from the runner's file."""
    columns = ["stage", "units", "wall_s", "cpu_s", "cpu_units"]
    if not path.exists():
        return pd.DataFrame(columns=columns)
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    if not lines:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(lines).drop_duplicates(subset=["stage", "unit"], keep="last")
    frame["cpu_units"] = 0
    for stage in frame["stage"].unique():
        runner_file = path.parent / stage / "unit_timings.jsonl"
        if not runner_file.exists():
            continue
        recorded = [json.loads(x) for x in runner_file.read_text(encoding="utf-8").splitlines() if x.strip()]
        cpu = {r["unit"]: float(r["cpu_s"]) for r in recorded}  # the last line of a unit wins
        rows = (frame["stage"] == stage) & frame["unit"].isin(list(cpu))
        frame.loc[rows, "cpu_s"] = frame.loc[rows, "unit"].map(cpu)
        frame.loc[rows, "cpu_units"] = 1
    totals = frame.groupby("stage", sort=False).agg(units=("unit", "size"), wall_s=("wall_s", "sum"),
                                                     cpu_s=("cpu_s", "sum"), cpu_units=("cpu_units", "sum")).reset_index()
    return totals[columns]


def _stage(name: str, report, echo: Callable[[str], None]) -> None:
    echo(f"[{name}] {report.summary_line()}")
    report.raise_if_failed()


def run_study(
    config: StudyConfig,
    out_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    model=None,
    executor=None,
    progress: bool = False,
    echo: Callable[[str], None] = print,
) -> StudyResult:
    """Run (or resume) every stage of the study into ``out_dir`` and write ``report.md``.

    ``model``: an already loaded model for the local executor (default: loaded once from ``config.model``);
    ``executor``: :class:`~interp_steer.runs.LocalExecutor` (default) or :class:`~interp_steer.runs.RayExecutor`.
    A stage whose units failed raises :class:`~interp_steer.runs.runner.UnitsFailedError` (rerun to retry them).
    """
    from interp_steer.runs.files import check_out_dir
    from interp_steer.runs.lock import OutDirLock
    from interp_steer.runs.study_start import prepare_study

    out_dir = check_out_dir(out_dir)
    with OutDirLock(out_dir):
        model, layers = prepare_study(config, out_dir, data_dir=data_dir, model=model, executor=executor)
        return _run_stages(config, out_dir, layers, None if data_dir is None else str(data_dir), model, executor,
                           progress, echo)


def _run_stages(config: StudyConfig, out_dir: Path, layers: list[int], data: str | None, run_model, executor,
                progress: bool, echo: Callable[[str], None]) -> StudyResult:
    from interp_steer.runs.id_ood import IdOodConfig, IdOodJob
    from interp_steer.runs.runner import run_job
    from interp_steer.runs.scan import ScanConfig, run_scan_job
    from interp_steer.runs.steerability import SteerabilityConfig, run_steerability

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    scan_config = ScanConfig(model=config.model, datasets=config.scan_datasets, layers=layers,
                             multipliers=config.scan_multipliers, n_train=config.scan_n_train,
                             n_test=config.scan_n_test, test_fraction=config.test_fraction, seed=config.seed,
                             batch_size=config.batch_size, table_format=config.table_format, device=config.device,
                             layers_per_unit=10)  # a killed scan loses at most 10 layers of one dataset
    holdout = ScanHoldout(config.test_fraction, config.seed, config.scan_n_train, config.scan_n_test, data)
    clock = out_dir / "timings.jsonl"
    scan = run_scan_job(scan_config, holdout, out_dir / "scan", model=run_model, executor=executor, progress=progress,
                        on_unit_done=UnitClock(clock, "scan"))
    _stage("scan", scan, echo)
    seconds["scan"] = time.perf_counter() - started
    profile = layer_profile(scan.tables["per_sample"], n_boot=config.n_boot, seed=config.seed)
    choice = choose_layer(profile, config.layer_framing)
    write_text_atomic(json.dumps(choice, indent=2), out_dir / "layer_choice.json")
    from interp_steer.report.format import format_ci as format_interval

    echo(f"[scan] chosen layer {choice['layer']}: mean {choice['framing']} steerability "
         f"{format_interval(choice['estimate'], choice['ci_low'], choice['ci_high'], choice['units'])}")

    started = time.perf_counter()
    steer_config = SteerabilityConfig(model=config.model, datasets=config.datasets, layer=choice["layer"],
                                      multipliers=config.multipliers, n_train=config.n_train, n_test=config.n_test,
                                      test_fraction=config.test_fraction, seed=config.seed,
                                      batch_size=config.batch_size, table_format=config.table_format,  # type: ignore[arg-type]
                                      device=config.device)
    steer = run_steerability(steer_config, out_dir / "steerability", data_dir=data, model=run_model,
                             executor=executor, progress=progress, on_unit_done=UnitClock(clock, "steerability"))
    _stage("steerability", steer, echo)
    seconds["steerability"] = time.perf_counter() - started

    ab_specs = [d for d in config.datasets if framing_of(d) == "ab"]
    if ab_specs:  # does the model do the A/B task: p(A) + p(B) per A/B test sample, unsteered
        from interp_steer.runs.ab_task import AbTaskConfig, AbTaskJob

        started = time.perf_counter()
        ab_config = AbTaskConfig(datasets=ab_specs, n_test=config.n_test, test_fraction=config.test_fraction,
                                 seed=config.seed, batch_size=config.batch_size, model=config.model,
                                 device=config.device)
        ab_task = run_job(AbTaskJob(ab_config, data), out_dir / "ab_task", model=run_model, executor=executor,
                          progress=progress, on_unit_done=UnitClock(clock, "ab_task"))
        _stage("ab_task", ab_task, echo)
        seconds["ab_task"] = time.perf_counter() - started

    started = time.perf_counter()
    id_config = IdOodConfig(model=config.model, datasets=config.id_ood_datasets, layer=choice["layer"],
                            multipliers=config.id_ood_multipliers, n_train=config.id_ood_n_train,
                            n_test=config.id_ood_n_test, test_fraction=config.test_fraction, seed=config.seed,
                            framing=config.id_ood_framing, full_grid=True, batch_size=config.batch_size,
                            table_format=config.table_format, device=config.device)  # type: ignore[arg-type]
    id_ood = run_job(IdOodJob(id_config, data), out_dir / "id_ood", model=run_model, executor=executor,
                     progress=progress, on_unit_done=UnitClock(clock, "id_ood"))
    _stage("id_ood", id_ood, echo)
    seconds["id_ood"] = time.perf_counter() - started

    started = time.perf_counter()
    from interp_steer.runs.study_rebuild import study_completion_lengths
    from interp_steer.runs.study_report import write_study_report

    lengths = study_completion_lengths(out_dir, config, tokenizer=None if run_model is None else run_model.tokenizer,
                                       data_dir=data)
    headline, figures = write_study_report(out_dir, config, scan_config, steer_config, profile, choice,
                                           steer.tables, id_ood.tables["per_sample"], lengths)
    seconds["report"] = time.perf_counter() - started
    from interp_steer.report.html import render_markdown_file

    render_markdown_file(out_dir / "report.md")
    echo(study_console_text(out_dir, headline, figures, seconds["report"]))
    return StudyResult(out_dir, choice, headline, figures, seconds, complete=True)


def study_console_text(out_dir: Path, headline: pd.DataFrame, figures: list[str], report_s: float) -> str:
    """The study's headline numbers as a console table (estimate [95% CI], units, n) and the paths written."""
    from interp_steer.report.console import paths_block, render_table

    table = render_table(
        headline, f"Headline numbers ({len(headline)}; 95% bootstrap intervals)",
        ["section", "group", "statistic", "estimate", "units", "n_samples", "n_datasets"],
        labels={"n_samples": "n samples", "n_datasets": "datasets"},
        meaning="each row is one number the report quotes, with its interval and the samples and datasets behind it; "
                "A/B rows are in logits, free-text rows in nats, and the two are never pooled. The report explains "
                "each section with its figures.")
    files = [out_dir / "report.md", out_dir / "report.html", out_dir / "tables", out_dir / "figures"]
    return table + "\n" + paths_block(files, f"wrote ({len(figures)} figures, report in {report_s:.0f} s)")


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
