"""In-distribution vs out-of-distribution steerability across prompt variants (Tan et al. 2024, Sec. 6) as a
runner job. One work unit per dataset (its free-text framing by default)::

    out/config.json                         the IdOodConfig
    out/units/<key>.per_sample.<fmt>        the dataset's per-sample steerability of every evaluated
                                            (train variant, eval variant) cell, with the persona sentences
    out/per_sample.<fmt>, id_ood.<fmt>      combined tables (every finished dataset, in config order)
    out/run_report.json

By default only the cells the ID / OOD / relative quantities need are evaluated (the BASE vector on every
variant, and each variant's vector on its own prompts); ``full_grid`` evaluates all of them with
:func:`~interp_steer.evaluation.variants.cross_variant_steerability`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pandas as pd

from interp_steer.config import COARSE_MULTIPLIERS, JobConfig, device_field, model_field, multipliers_field, option_field
from interp_steer.config.keys import dataset_stem
from interp_steer.errors import ConfigError, DataFormatError
from interp_steer.evaluation.engines import PropensityEngine
from interp_steer.runs.files import read_table, write_table_atomic
from interp_steer.runs.registry_pairs import RegistryPairs
from interp_steer.runs.runner import Job, RunReport, UnitFiles, run_job

KEYS = ["dataset", "train_variant", "variant", "layer", "hook_name", "vector", "sample_id"]


@dataclass
class IdOodConfig(JobConfig):
    """What the ID/OOD study computes. ``datasets``: MWE persona names (``persona:<name>@<framing>`` is loaded)
    or full dataset specs (containing ``:``). ``engine``: ``"fast"`` or ``"batched"`` (equal to ~1e-5)."""

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = (
        "model", "layer", "multipliers", "n_train", "n_test", "test_fraction", "seed", "framing", "full_grid",
        "table_format",
    )
    JOB: ClassVar[str] = "ID/OOD study"

    datasets: list[str]
    layer: int
    model: str = model_field()
    multipliers: list[float] = multipliers_field(COARSE_MULTIPLIERS)
    n_train: int | None = option_field(12, help="train pairs per dataset (CAA extraction)")
    n_test: int | None = option_field(6, help="test pairs per dataset (propensity evaluation)")
    test_fraction: float = 0.5
    seed: int = option_field(0, help="seed of the stratified train/test split")
    framing: str = "free_text"
    full_grid: bool = False
    engine: Literal["fast", "batched"] = "fast"
    batch_size: int = 32
    table_format: Literal["parquet", "csv"] = "csv"
    device: str = device_field()

    def __post_init__(self) -> None:
        self.datasets = list(self.datasets)
        self.multipliers = [float(m) for m in self.multipliers]
        if not self.datasets or len(set(self.datasets)) != len(self.datasets):
            raise ConfigError(f"IdOodConfig.datasets must name each dataset once, got {self.datasets}")
        if len(self.multipliers) < 2 or len(set(self.multipliers)) != len(self.multipliers):
            raise ConfigError(f"IdOodConfig.multipliers needs ≥ 2 distinct values, got {self.multipliers}")
        if self.layer < 0:
            raise ConfigError(f"IdOodConfig.layer must be ≥ 0, got {self.layer}")
        if self.engine not in ("fast", "batched"):
            raise ConfigError(f"IdOodConfig.engine must be 'fast' or 'batched', got {self.engine!r}")
        if self.table_format not in ("parquet", "csv"):
            raise ConfigError(f"IdOodConfig.table_format must be 'parquet' or 'csv', got {self.table_format!r}")

    def spec(self, dataset: str) -> str:
        return dataset if ":" in dataset else f"persona:{dataset}@{self.framing}"


@dataclass(frozen=True)
class IdOodUnit:
    dataset: str

    @property
    def key(self) -> str:
        return dataset_stem(self.dataset)


class IdOodJob(Job):
    """The study on the runner; each unit loads its dataset where it runs."""

    config: IdOodConfig

    def __init__(self, config: IdOodConfig, data_dir: str | Path | None = None) -> None:
        self.config = config
        self.data = RegistryPairs(None, config.test_fraction, config.seed, config.n_train, config.n_test,
                                  None if data_dir is None else str(data_dir))

    def units(self) -> list[IdOodUnit]:
        return [IdOodUnit(d) for d in self.config.datasets]

    def unit_files(self, unit: IdOodUnit) -> list[str]:
        return [f"units/{unit.key}.per_sample.{self.config.table_format}"]

    def compute(self, unit: IdOodUnit, model) -> UnitFiles:
        train, test = self.data(self.config.spec(unit.dataset))
        return [(self.unit_files(unit)[0], id_ood_unit(model, self.config, unit.dataset, train, test))]

    def combine(self, out_dir: Path) -> dict[str, pd.DataFrame]:
        return combine_id_ood(out_dir, self.config)


def _engine(config: IdOodConfig) -> PropensityEngine:
    """The config's engine, with the config's ``batch_size`` unless a call passes its own."""
    from interp_steer.evaluation.engines import get_engine

    return partial(get_engine(config.engine), batch_size=config.batch_size)


def id_ood_unit(model, config: IdOodConfig, name: str, train, test) -> pd.DataFrame:
    """Per-sample steerability of the evaluated (train variant, eval variant) cells of one dataset, with the
    columns ``behaviour`` (``name``), ``sentence_pos`` and ``sentence_neg`` (the persona sentences from ``train``)."""
    from interp_steer.evaluation import VARIANTS, apply_variant, cross_variant_steerability, persona_sentences, steerability
    from interp_steer.methods.caa import extract_caa

    if not train or not test:
        raise ConfigError(f"dataset {name!r}: needs non-empty train and test splits")
    engine = _engine(config)
    sentences = persona_sentences(train)
    if config.full_grid:
        grid = cross_variant_steerability(model, train, test, config.layer, config.multipliers,
                                          sentences=sentences, extract=extract_caa, engine=engine)
        per_sample = grid["per_sample"]
        if 0.0 in config.multipliers:  # the unsteered propensity per (variant, sample), for the propensity difference
            from interp_steer.evaluation.variants import unsteered_propensity

            unsteered = unsteered_propensity(grid["propensities"]).rename(columns={"propensity": "unsteered_propensity"})
            per_sample = per_sample.merge(unsteered[["dataset", "variant", "sample_id", "unsteered_propensity"]],
                                          on=["dataset", "variant", "sample_id"], how="left")
    else:
        vectors = {v: extract_caa(model, apply_variant(train, v, sentences), [config.layer], progress=False)
                   for v in VARIANTS}
        # the BASE vector on all variants in one engine call (ids made unique per variant), then the diagonal
        evals = {"BASE": [p.with_(id=f"{p.id}|{v}") for v in VARIANTS for p in apply_variant(test, v, sentences)]}
        evals.update({v: apply_variant(test, v, sentences) for v in VARIANTS if v != "BASE"})
        frames = [engine(model, pairs, vectors[tv], config.multipliers, progress=False, vector_name=f"caa:{tv}")
                  .assign(train_variant=tv) for tv, pairs in evals.items()]
        frames = [f.assign(sample_id=f["sample_id"].str.split("|").str[0]) for f in frames]
        per_sample = steerability(pd.concat(frames, ignore_index=True), keys=KEYS)
    return per_sample.assign(behaviour=name, sentence_pos=sentences.positive, sentence_neg=sentences.negative)


def id_ood_table(per_sample: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, eval variant ≠ BASE): ID (BASE→BASE), OOD (BASE→Y), own (Y→Y) mean slopes and the
    relative steerability BASE→Y / |Y→Y| (NaN unless Y→Y > ``MIN_OWN_SLOPE``)."""
    from interp_steer.evaluation.variants import MIN_OWN_SLOPE

    means = per_sample.groupby(["behaviour", "train_variant", "variant"])["slope"].mean()
    rows = []
    for name in per_sample["behaviour"].unique():
        id_slope = means.get((name, "BASE", "BASE"), np.nan)
        for variant in sorted(per_sample.loc[per_sample["variant"] != "BASE", "variant"].unique()):
            ood, own = means.get((name, "BASE", variant), np.nan), means.get((name, variant, variant), np.nan)
            rel = ood / abs(own) if np.isfinite(own) and own > MIN_OWN_SLOPE else np.nan
            rows.append({"dataset": name, "variant": variant, "id_steerability": id_slope, "ood_steerability": ood,
                         "own_variant_steerability": own, "relative_steerability": rel})
    return pd.DataFrame(rows)


def combine_id_ood(out_dir: str | Path, config: IdOodConfig) -> dict[str, pd.DataFrame]:
    """Every finished dataset's per-sample table (config order) and the ID/OOD table; written into ``out_dir``."""
    out_dir = Path(out_dir)
    paths = [out_dir / "units" / f"{IdOodUnit(d).key}.per_sample.{config.table_format}" for d in config.datasets]
    present = [p for p in paths if p.exists()]
    if not present:
        raise DataFormatError(f"{out_dir} has no finished ID/OOD units yet")
    per_sample = pd.concat([read_table(p) for p in present], ignore_index=True)
    tables = {"per_sample": per_sample, "id_ood": id_ood_table(per_sample)}
    for name, frame in tables.items():
        write_table_atomic(frame, out_dir / f"{name}.{config.table_format}")
    return tables


def run_id_ood(config: IdOodConfig, out_dir: str | Path, *, data_dir: str | Path | None = None, model=None,
               executor=None, progress: bool = True, time_budget_s: float | None = None) -> RunReport:
    """Run the study's missing datasets into ``out_dir`` (see :func:`~interp_steer.runs.runner.run_job`)."""
    return run_job(IdOodJob(config, data_dir), out_dir, executor=executor, model=model, progress=progress,
                   time_budget_s=time_budget_s)
