"""Does the model do the A/B task at all? One unsteered forward pass per A/B test sample of a study.

The steerability units keep the two letters' logit difference and the pair-normalised p(matching), not the
absolute probability mass the model puts on the two answer letters. This job adds it, resumable per dataset::

    out/config.json                  the AbTaskConfig
    out/units/<key>.csv              per sample: format_mass = p(A) + p(B) at the answer position, pos_prob, is_A
    out/per_sample.csv               every finished unit

The samples are the steerability stage's test samples (same registry split, same ``n_test``), so the rows join the
study's propensity tables on ``(dataset, sample_id)``. No steering: multiplier 0 only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pandas as pd

from interp_steer.config import JobConfig, device_field, model_field
from interp_steer.config.keys import dataset_stem
from interp_steer.errors import ConfigError
from interp_steer.runs.files import read_table, write_table_atomic
from interp_steer.runs.registry_pairs import RegistryPairs
from interp_steer.runs.runner import Job, UnitFiles

AB_TASK_COLUMNS = ["dataset", "sample_id", "format_mass", "pos_prob", "logit_diff", "is_A"]


@dataclass
class AbTaskConfig(JobConfig):
    """Which A/B datasets and test samples to score (the steerability stage's split and ``n_test``)."""

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = ("model", "datasets", "n_test", "test_fraction", "seed")
    JOB: ClassVar[str] = "A/B task check"

    datasets: list[str]
    n_test: int | None = 50
    test_fraction: float = 0.5
    seed: int = 0
    batch_size: int = 32
    model: str = model_field()
    device: str = device_field()

    def __post_init__(self) -> None:
        from interp_steer.data.registry import parse_spec

        self.datasets = list(self.datasets)
        if not self.datasets:
            raise ConfigError("AbTaskConfig.datasets is empty: name at least one A/B dataset")
        for spec in self.datasets:
            if parse_spec(spec)[2] != "ab":
                raise ConfigError(f"AbTaskConfig.datasets: {spec!r} is not an A/B dataset spec")


@dataclass(frozen=True)
class AbTaskUnit:
    """One A/B dataset."""

    dataset: str

    @property
    def key(self) -> str:
        return dataset_stem(self.dataset)


class AbTaskJob(Job):
    """Unsteered answer-letter scores of every A/B test sample (see the module docs)."""

    config: AbTaskConfig

    def __init__(self, config: AbTaskConfig, data_dir: str | Path | None = None) -> None:
        self.config = config
        self.data = RegistryPairs(None, config.test_fraction, config.seed, 1, config.n_test,
                                  None if data_dir is None else str(data_dir))

    def units(self) -> list[AbTaskUnit]:
        return [AbTaskUnit(d) for d in self.config.datasets]

    def unit_files(self, unit: AbTaskUnit) -> list[str]:
        return [f"units/{unit.key}.csv"]

    def compute(self, unit: AbTaskUnit, model) -> UnitFiles:
        from interp_steer.evaluation.side_effects import answer_scores

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the xrisk loaders warn about skipped multi-choice rows
            _, test = self.data(unit.dataset)
        scores = answer_scores(model, test, None, [0.0], batch_size=self.config.batch_size)
        scores["dataset"] = unit.dataset
        return [(self.unit_files(unit)[0], scores.reindex(columns=AB_TASK_COLUMNS))]

    def combine(self, out_dir: Path) -> dict[str, pd.DataFrame]:
        frames = [read_table(out_dir / self.unit_files(u)[0]) for u in self.units()
                  if (out_dir / self.unit_files(u)[0]).exists()]
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=AB_TASK_COLUMNS)
        write_table_atomic(table, out_dir / "per_sample.csv")
        return {"per_sample": table}


def read_ab_task(study_dir: Path) -> pd.DataFrame | None:
    """The ``ab_task/per_sample.csv`` table of a study directory, or ``None`` where that stage has not run."""
    path = Path(study_dir) / "ab_task" / "per_sample.csv"
    return read_table(path) if path.exists() else None
