"""``evaluate`` as a runner job: one steering vector (and norm-matched random baselines) on one dataset.

Units are the vector itself and each random baseline seed; each writes ``units/<key>.propensity.<fmt>``. The
combined tables are those ``interp-steer evaluate`` always wrote::

    out/propensities.<fmt>, per_sample.<fmt>, summary.<fmt>[, spurious.<fmt>]   (spurious: A/B sets only)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pandas as pd

from interp_steer.errors import ConfigError, DataFormatError
from interp_steer.runs.config import JobConfig
from interp_steer.runs.files import read_table, write_table_atomic
from interp_steer.runs.runner import Job, UnitFiles
from interp_steer.steering.vector import SteeringVector


@dataclass
class EvaluateConfig(JobConfig):
    """What ``evaluate`` computes; saved as ``config.json``. ``vector_sha1`` identifies the vector file's contents
    (so a directory is not resumed with a changed vector under the same name); ``random_baselines`` may grow
    between a run and its resume (the new seeds are added)."""

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = (
        "vector_sha1", "layer", "dataset", "model", "multipliers", "split", "test_fraction", "seed", "n", "framing",
        "table_format",
    )
    JOB: ClassVar[str] = "evaluation"

    vector: str
    dataset: str
    model: str
    multipliers: list[float]
    layer: int | None = None
    split: str = "test"
    test_fraction: float = 0.5
    seed: int = 0
    n: int | None = None
    random_baselines: int = 0
    framing: str | None = None
    batch_size: int = 32
    table_format: str = "parquet"
    device: str = "cpu"
    vector_sha1: str = ""
    vector_name: str = field(default="")

    def __post_init__(self) -> None:
        self.multipliers = [float(m) for m in self.multipliers]
        if len(self.multipliers) < 2 or len(set(self.multipliers)) != len(self.multipliers):
            raise ConfigError(f"EvaluateConfig.multipliers needs ≥ 2 distinct values, got {self.multipliers}")
        if self.split not in ("test", "all"):
            raise ConfigError(f"--split {self.split!r}: use 'test' or 'all'")
        if self.table_format not in ("parquet", "csv"):
            raise ConfigError(f"--format {self.table_format!r}: use parquet or csv")
        if self.random_baselines < 0 or self.batch_size < 1 or (self.n is not None and self.n < 1):
            raise ConfigError("EvaluateConfig: random_baselines ≥ 0, batch_size ≥ 1 and n ≥ 1 (or None) are needed")
        self.vector_name = self.vector_name or Path(self.vector).stem


@dataclass(frozen=True)
class EvaluateUnit:
    """The evaluated vector (``seed=None``) or the norm-matched random vector of one seed."""

    seed: int | None = None

    @property
    def key(self) -> str:
        return "vector" if self.seed is None else f"random-{self.seed:03d}"


def file_sha1(path: str | Path) -> str:
    """Hex SHA-1 of a file's bytes (the vector's identity in :class:`EvaluateConfig`)."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


class EvaluateJob(Job):
    """``vector`` (already restricted to one hook) on ``config.dataset``; pairs are loaded where units run."""

    config: EvaluateConfig

    def __init__(self, config: EvaluateConfig, vector: SteeringVector, data_dir: str | Path | None = None) -> None:
        self.config, self.vector = config, vector
        self.data_dir = None if data_dir is None else str(data_dir)
        self._pairs = None

    def units(self) -> list[EvaluateUnit]:
        return [EvaluateUnit(None), *(EvaluateUnit(s) for s in range(self.config.random_baselines))]

    def unit_files(self, unit: EvaluateUnit) -> list[str]:
        return [f"units/{unit.key}.propensity.{self.config.table_format}"]

    def pairs(self):
        """The evaluated pairs: the test part of the seeded split (or all pairs), first ``n``."""
        if self._pairs is None:
            from interp_steer.data import load_dataset, train_test_split

            cfg = self.config
            pairs = load_dataset(cfg.dataset, data_dir=self.data_dir, framing=cfg.framing)
            if cfg.split == "test":
                pairs = train_test_split(pairs, test_fraction=cfg.test_fraction, seed=cfg.seed)[1]
            self._pairs = pairs[: cfg.n]
        return self._pairs

    def compute(self, unit: EvaluateUnit, model) -> UnitFiles:
        from interp_steer.evaluation import compute_propensities, random_like

        cfg = self.config
        self.vector.check_fits(model)
        if unit.seed is None:
            vector, name = self.vector, cfg.vector_name
        else:
            vector, name = random_like(self.vector, unit.seed), f"random:{unit.seed}"
        table = compute_propensities(model, self.pairs(), vector, cfg.multipliers, batch_size=cfg.batch_size,
                                     device=cfg.device, progress=False, vector_name=name)
        return [(self.unit_files(unit)[0], table)]

    def combine(self, out_dir: Path) -> dict[str, pd.DataFrame]:
        return combine_evaluation(out_dir, self.config)


def combine_evaluation(out_dir: str | Path, config: EvaluateConfig) -> dict[str, pd.DataFrame]:
    """The finished units' propensities (vector first, then the random seeds) and their per-sample, summary and
    (A/B sets) spurious-factor tables; written into ``out_dir``."""
    from interp_steer.evaluation import spurious_factor_variance, steerability, summarize_steerability

    out_dir = Path(out_dir)
    units = [EvaluateUnit(None), *(EvaluateUnit(s) for s in range(config.random_baselines))]
    paths = [out_dir / "units" / f"{u.key}.propensity.{config.table_format}" for u in units]
    present = [p for p in paths if p.exists()]
    if not present:
        raise DataFormatError(f"{out_dir} has no finished evaluation units yet")
    props = pd.concat([read_table(p) for p in present], ignore_index=True)
    per_sample = steerability(props)
    tables = {"propensities": props, "per_sample": per_sample, "summary": summarize_steerability(per_sample)}
    own = per_sample[per_sample["vector"] == config.vector_name]
    if len(own) and own["is_A"].notna().any():
        tables["spurious"] = spurious_factor_variance(own)
    for name, frame in tables.items():
        write_table_atomic(frame, out_dir / f"{name}.{config.table_format}")
    return tables
