"""Steerability across many datasets (Tan et al. 2024, Sec. 4/5) as a runner job.

One CAA vector per dataset at one layer (extracted from the dataset's train part), per-sample steerability on
its test part. A work unit is one dataset spec in one framing (``persona:x`` and ``persona:x@free_text`` are two
units; the framing is the spec's, see :func:`interp_steer.data.registry.parse_spec`)::

    out/config.json                            the SteerabilityConfig
    out/units/<key>.propensity.<fmt>           the unit's propensity rows
    out/units/<key>.per_sample.<fmt>           its per-sample steerability (written last: marks the unit done)
    out/per_sample.<fmt>, summary.<fmt>, summary_by_source.<fmt>, spurious.<fmt>   combined tables
    out/run_report.json                        done / skipped / failed units of the last run

``framings`` and ``shard`` only select which missing units this process may compute (so several processes can
share one directory); the combined tables always contain every finished unit of ``datasets``. The spurious-factor
table (:func:`spurious_by_dataset`) is a combine step over the A/B rows: no forward passes of its own.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Literal

import pandas as pd

from interp_steer.config import TAN_MULTIPLIERS, JobConfig, device_field, model_field, multipliers_field, option_field
from interp_steer.config.keys import dataset_stem
from interp_steer.errors import ConfigError, DataFormatError
from interp_steer.runs.files import read_table, write_table_atomic
from interp_steer.runs.registry_pairs import RegistryPairs
from interp_steer.runs.runner import Job, RunReport, UnitFiles, run_job

SUMMARY_BY = ["source", "framing", "dataset", "layer"]


@dataclass
class SteerabilityConfig(JobConfig):
    """What the cross-dataset steerability study computes; saved as ``config.json`` beside the results.

    ``datasets``: dataset specs in report order (a framing suffix makes a separate unit). Each is split with the
    registry's stratified ``train_test_split(test_fraction, seed)``; the first ``n_train`` / ``n_test`` pairs of
    each part are used. ``engine``: ``"fast"`` (prefix-cached, the study's default) or ``"batched"``
    (:func:`~interp_steer.evaluation.propensity.compute_propensities`); equal to ~1e-5, so not result-defining.
    ``framings`` (``None``: all) and ``shard`` (``"I/N"``: the I-th of N interleaved slices of the selected units)
    restrict which missing units this run computes.
    """

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = (
        "model", "layer", "multipliers", "n_train", "n_test", "test_fraction", "seed", "read_position", "table_format",
    )
    JOB: ClassVar[str] = "steerability study"

    datasets: list[str]
    layer: int
    model: str = model_field()
    multipliers: list[float] = multipliers_field(TAN_MULTIPLIERS)
    n_train: int | None = option_field(20, help="train pairs per dataset (CAA extraction)")
    n_test: int | None = option_field(30, help="test pairs per dataset (propensity evaluation)")
    test_fraction: float = 0.5
    seed: int = option_field(0, help="seed of the stratified train/test split")
    batch_size: int = 32
    read_position: str | None = None
    engine: Literal["fast", "batched"] = "fast"
    table_format: Literal["parquet", "csv"] = "csv"
    framings: list[str] | None = None
    shard: str = "0/1"
    device: str = device_field()

    def __post_init__(self) -> None:
        from interp_steer.data.registry import parse_spec

        self.datasets = list(self.datasets)
        self.multipliers = [float(m) for m in self.multipliers]
        if not self.datasets:
            raise ConfigError("SteerabilityConfig.datasets is empty: name at least one dataset")
        repeated = sorted({d for d in self.datasets if self.datasets.count(d) > 1})
        if repeated:
            raise ConfigError(f"SteerabilityConfig.datasets lists {', '.join(map(repr, repeated))} more than once")
        for spec in self.datasets:
            parse_spec(spec)  # a bad spec is a one-line error before any work
        if self.layer < 0:
            raise ConfigError(f"SteerabilityConfig.layer must be ≥ 0, got {self.layer}")
        if len(self.multipliers) < 2 or len(set(self.multipliers)) != len(self.multipliers):
            raise ConfigError(f"SteerabilityConfig.multipliers needs ≥ 2 distinct values, got {self.multipliers}")
        for name in ("n_train", "n_test"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"SteerabilityConfig.{name} must be ≥ 1 or None, got {value}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"SteerabilityConfig.test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.engine not in ("fast", "batched"):
            raise ConfigError(f"SteerabilityConfig.engine must be 'fast' or 'batched', got {self.engine!r}")
        if self.table_format not in ("parquet", "csv"):
            raise ConfigError(f"SteerabilityConfig.table_format must be 'parquet' or 'csv', got {self.table_format!r}")
        self._shard()  # a bad --shard fails here, before any work

    @property
    def shard_index(self) -> int:
        return self._shard()[0]

    @property
    def shard_count(self) -> int:
        return self._shard()[1]

    def _shard(self) -> tuple[int, int]:
        try:
            index, count = (int(x) for x in self.shard.split("/"))
        except ValueError:
            raise ConfigError(f"--shard {self.shard!r}: expected I/N, e.g. 0/2") from None
        if count < 1 or not 0 <= index < count:
            raise ConfigError(f"--shard {self.shard!r}: need 0 ≤ I < N")
        return index, count

    def all_units(self) -> list["SteerabilityUnit"]:
        """Every unit of the study, in report order."""
        return [SteerabilityUnit(spec) for spec in self.datasets]

    def selected_units(self) -> list["SteerabilityUnit"]:
        """The units this run may compute: of the ``framings`` asked for, every ``shard_count``-th from
        ``shard_index`` (so N shards split the computable units evenly)."""
        chosen = [u for u in self.all_units() if self.framings is None or u.framing in self.framings]
        return [u for i, u in enumerate(chosen) if i % self.shard_count == self.shard_index]


@dataclass(frozen=True)
class SteerabilityUnit:
    """One dataset spec (with its framing) of the study."""

    dataset: str

    @property
    def framing(self) -> str:
        from interp_steer.data.registry import parse_spec

        return parse_spec(self.dataset)[2]

    @property
    def source(self) -> str:
        return self.dataset.split(":", 1)[0]

    @property
    def key(self) -> str:
        return dataset_stem(self.dataset)


def mwe_study_datasets(seed: int = 0, data_dir: str | Path | None = None) -> list[str]:
    """The MWE study's unit order: xrisk set (A/B), persona set (A/B), the same persona set in free text, next
    xrisk set, … (persona sets in the order of a ``random.Random(seed)`` shuffle)."""
    from interp_steer.data import list_datasets

    specs = list_datasets(data_dir)
    persona = [s.split(":", 1)[1] for s in specs if s.startswith("persona:")]
    xrisk = [s.split(":", 1)[1] for s in specs if s.startswith("xrisk:")]
    random.Random(seed).shuffle(persona)
    order: list[str] = []
    for i in range(max(len(persona), len(xrisk))):
        if i < len(xrisk):
            order.append(f"xrisk:{xrisk[i]}")
        if i < len(persona):
            order += [f"persona:{persona[i]}", f"persona:{persona[i]}@free_text"]
    return order


class SteerabilityJob(Job):
    """The study on the runner; pairs are loaded where the unit runs (from ``data_dir`` or the default root)."""

    config: SteerabilityConfig

    def __init__(self, config: SteerabilityConfig, data_dir: str | Path | None = None) -> None:
        self.config = config
        self.data = RegistryPairs(None, config.test_fraction, config.seed, config.n_train, config.n_test,
                                  None if data_dir is None else str(data_dir))

    def units(self) -> list[SteerabilityUnit]:
        return self.config.selected_units()

    def unit_files(self, unit: SteerabilityUnit) -> list[str]:
        fmt = self.config.table_format
        return [f"units/{unit.key}.propensity.{fmt}", f"units/{unit.key}.per_sample.{fmt}"]

    def compute(self, unit: SteerabilityUnit, model) -> UnitFiles:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the xrisk loaders warn about skipped multi-choice rows
            train, test = self.data(unit.dataset)
        propensities, per_sample = steerability_unit(model, self.config, unit, train, test)
        props_file, per_sample_file = self.unit_files(unit)
        return [(props_file, propensities), (per_sample_file, per_sample)]

    def combine(self, out_dir: Path) -> dict[str, pd.DataFrame]:
        return combine_steerability(out_dir, self.config)


def steerability_unit(model, config: SteerabilityConfig, unit: SteerabilityUnit, train, test):
    """CAA at ``config.layer`` on ``train``, propensities and per-sample steerability on ``test``.

    Returns ``(propensities, per_sample)``; ``dataset`` is the unit's spec, and the per-sample rows carry
    ``source``, ``n_train``, ``vector_norm`` and ``framing`` (the columns of the study's ``per_sample`` table).
    """
    from interp_steer.evaluation import steerability
    from interp_steer.evaluation.engines import get_engine
    from interp_steer.methods.caa import extract_caa

    if not train or not test:
        raise ConfigError(f"dataset {unit.dataset!r}: needs non-empty train and test splits "
                          f"(got {len(train)} train, {len(test)} test)")
    vector = extract_caa(model, train, [config.layer], read_position=config.read_position,
                         batch_size=config.batch_size, progress=False, dataset=unit.dataset)
    name = f"caa:{unit.dataset}"
    propensities = get_engine(config.engine)(model, test, vector, config.multipliers, batch_size=config.batch_size,
                                             device=config.device, progress=False, vector_name=name)
    propensities["dataset"] = unit.dataset
    per_sample = steerability(propensities).assign(
        source=unit.source, n_train=len(train), vector_norm=float(next(iter(vector.directions.values())).norm()),
        framing=unit.framing)
    return propensities, per_sample


def summarize_study(per_sample: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(summary, summary_by_source)`` of a study's per-sample table.

    ``summary``: :func:`~interp_steer.evaluation.summarize_steerability` per (source, framing, dataset, layer), plus
    ``letter_balanced_slope`` (mean of the per-letter mean slopes, A/B rows) and ``share_positive_B``.
    ``summary_by_source``: per (source, framing) the number of datasets and samples, mean / min / max of the
    per-dataset mean slopes, median of the medians, mean anti-steerable fraction, datasets with more than half of
    their samples anti-steerable, and the mean letter-balanced slope.
    """
    from interp_steer.evaluation import summarize_steerability

    summary = summarize_steerability(per_sample, by=SUMMARY_BY)
    ab = per_sample[per_sample["framing"] == "ab"]
    balanced = ab.groupby(["dataset", "is_A"])["slope"].mean().groupby("dataset").mean()
    summary["letter_balanced_slope"] = summary["dataset"].map(balanced)
    summary["share_positive_B"] = summary["dataset"].map(1 - ab.groupby("dataset")["is_A"].mean().astype(float))
    groups = summary.groupby(["source", "framing"]).agg(
        n_datasets=("dataset", "size"), n_samples=("n_samples", "sum"),
        mean_slope=("mean_slope", "mean"), median_of_medians=("median_slope", "median"),
        min_mean_slope=("mean_slope", "min"), max_mean_slope=("mean_slope", "max"),
        anti_steerable_fraction=("anti_steerable_fraction", "mean"),
        datasets_mostly_anti=("anti_steerable_fraction", lambda s: int((s > 0.5).sum())),
        letter_balanced_slope=("letter_balanced_slope", "mean"),
    ).reset_index()
    return summary, groups


def spurious_by_dataset(per_sample: pd.DataFrame) -> pd.DataFrame:
    """The spurious-factor table of a study's A/B rows (``kind == "ab"``): per dataset
    :func:`~interp_steer.evaluation.spurious_factor_variance` (R² of the slope on is_A, then is_A + is_Yes, and the
    variance split), plus ``mean_slope_pos_is_A`` / ``mean_slope_pos_is_B`` (mean slope of the samples whose
    positive answer is (A) / (B)), ``mean_slope`` and ``source``. Empty if there are no A/B rows."""
    from interp_steer.evaluation import spurious_factor_variance

    ab = per_sample[per_sample["kind"] == "ab"]
    if ab.empty:
        return pd.DataFrame()
    spurious = spurious_factor_variance(ab, by=["dataset"])
    by_letter = ab.groupby(["dataset", "is_A"])["slope"].mean().unstack()
    spurious["mean_slope_pos_is_A"] = spurious["dataset"].map(by_letter.get(True, pd.Series(dtype=float)))
    spurious["mean_slope_pos_is_B"] = spurious["dataset"].map(by_letter.get(False, pd.Series(dtype=float)))
    spurious["mean_slope"] = spurious["dataset"].map(ab.groupby("dataset")["slope"].mean())
    spurious["source"] = spurious["dataset"].str.split(":").str[0]
    return spurious


def finished_units(out_dir: str | Path, config: SteerabilityConfig) -> list[SteerabilityUnit]:
    """The study's units whose per-sample table is in ``out_dir`` (any framing or shard), in report order."""
    out_dir = Path(out_dir)
    return [u for u in config.all_units()
            if (out_dir / "units" / f"{u.key}.per_sample.{config.table_format}").exists()]


def combine_steerability(out_dir: str | Path, config: SteerabilityConfig | None = None) -> dict[str, pd.DataFrame]:
    """Concatenate every finished unit's per-sample table (report order) and rebuild ``summary``,
    ``summary_by_source`` and (A/B rows) ``spurious``; all written into ``out_dir``."""
    out_dir = Path(out_dir)
    if config is None:
        path = out_dir / "config.json"
        if not path.exists():
            raise DataFormatError(f"{out_dir} has no config.json; is it a steerability study directory?")
        config = SteerabilityConfig.read(path)
    done = finished_units(out_dir, config)
    if not done:
        raise DataFormatError(f"{out_dir} has no finished steerability units yet")
    fmt = config.table_format
    per_sample = pd.concat([read_table(out_dir / "units" / f"{u.key}.per_sample.{fmt}") for u in done],
                           ignore_index=True)
    summary, by_source = summarize_study(per_sample)
    tables = {"per_sample": per_sample, "summary": summary, "summary_by_source": by_source}
    spurious = spurious_by_dataset(per_sample)
    if not spurious.empty:
        tables["spurious"] = spurious
    for name, frame in tables.items():
        write_table_atomic(frame, out_dir / f"{name}.{fmt}")
    return tables


def run_steerability(
    config: SteerabilityConfig,
    out_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    model=None,
    executor=None,
    progress: bool = True,
    time_budget_s: float | None = None,
    on_unit_done: Callable[[SteerabilityUnit], None] | None = None,
) -> RunReport:
    """Run the study's missing selected units into ``out_dir`` (see :func:`~interp_steer.runs.runner.run_job`);
    the report's ``tables`` are those of :func:`combine_steerability` (``{}`` if no unit is finished)."""
    return run_job(SteerabilityJob(config, data_dir), out_dir, executor=executor, model=model, progress=progress,
                   time_budget_s=time_budget_s, on_unit_done=on_unit_done)
