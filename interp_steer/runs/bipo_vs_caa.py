"""BiPO vs CAA at one layer on the same train/test split per dataset, as a runner job.

Two work units per dataset, independent of each other::

    caa unit:   units/caa__<key>.safetensors, units/caa__<key>.propensity.csv    (the CAA vector, evaluated)
    bipo unit:  units/bipo__<key>.safetensors [, units/allpos__<key>.propensity.csv], units/bipo__<key>.propensity.csv

The BiPO unit trains BiPO on the train pairs and evaluates it at its own norm (``method="bipo"``) and rescaled to
the CAA vector's norm (``"bipo@caa_norm"``; the CAA vector is re-extracted there, a cheap deterministic pass, so
the units need not share files); for datasets in ``all_pos_datasets`` it also scores CAA and BiPO@CAA-norm with
every-position steering (BiPO's training convention). With ``checkpoint_dir`` BiPO checkpoints every
``checkpoint_every`` steps there and a rerun resumes mid-training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from interp_steer.config import (
    COARSE_MULTIPLIERS,
    HALF_STEP_MULTIPLIERS,
    JobConfig,
    device_field,
    model_field,
    multipliers_field,
    option_field,
)
from interp_steer.config.keys import dataset_stem
from interp_steer.errors import ConfigError
from interp_steer.runs.files import read_table
from interp_steer.runs.registry_pairs import RegistryPairs
from interp_steer.runs.runner import Job, RunReport, UnitFiles, run_job


@dataclass
class BipoVsCaaConfig(JobConfig):
    """What the comparison computes. ``datasets``: specs in report order; ``all_pos_datasets``: those also scored
    with every-position steering at ``all_pos_multipliers``. The ``bipo_*`` fields are
    :class:`~interp_steer.methods.BiPOConfig`'s (``warmup_steps = bipo_steps // 10``)."""

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = (
        "model", "layer", "multipliers", "n_train", "n_test", "seed", "bipo_steps", "bipo_lr", "bipo_beta",
        "bipo_batch_size", "bipo_grad_accumulation", "bipo_weight_decay", "all_pos_multipliers",
    )
    JOB: ClassVar[str] = "BiPO vs CAA"

    datasets: list[str]
    layer: int
    model: str = model_field()
    multipliers: list[float] = multipliers_field(HALF_STEP_MULTIPLIERS)
    n_train: int | None = option_field(40, help="train pairs per dataset (CAA extraction)")
    n_test: int | None = option_field(24, help="test pairs per dataset (propensity evaluation)")
    seed: int = option_field(0, help="seed of the stratified train/test split")
    all_pos_datasets: list[str] = field(default_factory=list)
    all_pos_multipliers: list[float] = field(default_factory=lambda: list(COARSE_MULTIPLIERS))
    bipo_steps: int = 30
    bipo_lr: float = 0.03
    bipo_beta: float = 0.1
    bipo_batch_size: int = 4
    bipo_grad_accumulation: int = 1
    bipo_weight_decay: float = 0.05
    checkpoint_every: int = 5
    checkpoint_dir: str | None = None
    device: str = device_field()

    def __post_init__(self) -> None:
        self.datasets = list(self.datasets)
        self.multipliers = [float(m) for m in self.multipliers]
        self.all_pos_multipliers = [float(m) for m in self.all_pos_multipliers]
        if not self.datasets or len(set(self.datasets)) != len(self.datasets):
            raise ConfigError(f"BipoVsCaaConfig.datasets must name each dataset once, got {self.datasets}")
        if len(self.multipliers) < 2 or len(set(self.multipliers)) != len(self.multipliers):
            raise ConfigError(f"BipoVsCaaConfig.multipliers needs ≥ 2 distinct values, got {self.multipliers}")
        stray = [d for d in self.all_pos_datasets if d not in self.datasets]
        if stray:
            raise ConfigError(f"all_pos_datasets {stray} are not among the datasets")
        if self.bipo_steps < 1:
            raise ConfigError(f"BipoVsCaaConfig.bipo_steps must be ≥ 1, got {self.bipo_steps}")

    def bipo_config(self, checkpoint: str | None = None):
        from interp_steer.methods import BiPOConfig

        return BiPOConfig(layer=self.layer, beta=self.bipo_beta, lr=self.bipo_lr, weight_decay=self.bipo_weight_decay,
                          batch_size=self.bipo_batch_size, grad_accumulation=self.bipo_grad_accumulation,
                          max_steps=self.bipo_steps, warmup_steps=self.bipo_steps // 10, seed=self.seed,
                          checkpoint_every=self.checkpoint_every if checkpoint else None, checkpoint_path=checkpoint)


@dataclass(frozen=True)
class BipoVsCaaUnit:
    dataset: str
    method: str  # "caa" or "bipo"

    @property
    def key(self) -> str:
        return f"{self.method}__{dataset_stem(self.dataset)}"


class BipoVsCaaJob(Job):
    """The comparison on the runner (pairs loaded where the unit runs)."""

    config: BipoVsCaaConfig

    def __init__(self, config: BipoVsCaaConfig, data_dir: str | Path | None = None) -> None:
        self.config = config
        self.data = RegistryPairs(None, 0.5, config.seed, config.n_train, config.n_test,
                                  None if data_dir is None else str(data_dir))

    def units(self) -> list[BipoVsCaaUnit]:
        return [BipoVsCaaUnit(d, m) for d in self.config.datasets for m in ("caa", "bipo")]

    def unit_files(self, unit: BipoVsCaaUnit) -> list[str]:
        files = [f"units/{unit.key}.safetensors"]
        if unit.method == "bipo" and unit.dataset in self.config.all_pos_datasets:
            files.append(f"units/allpos__{dataset_stem(unit.dataset)}.propensity.csv")
        return files + [f"units/{unit.key}.propensity.csv"]

    def compute(self, unit: BipoVsCaaUnit, model) -> UnitFiles:
        from interp_steer.evaluation.fast_engine import fast_propensities
        from interp_steer.methods import extract_caa, train_bipo

        cfg = self.config
        train, test = self.data(unit.dataset)
        started = time.perf_counter()
        caa = extract_caa(model, train, [cfg.layer], progress=False, dataset=unit.dataset)
        seconds = time.perf_counter() - started
        caa_norm = caa.norms()[caa.hook_names[0]]
        files = self.unit_files(unit)
        if unit.method == "caa":
            table = fast_propensities(model, test, caa, cfg.multipliers, progress=False, vector_name="caa")
            table = table.assign(method="caa", vector_norm=caa_norm, train_seconds=seconds, n_train=len(train))
            return [(files[0], caa), (files[-1], table)]
        checkpoint = None if cfg.checkpoint_dir is None else Path(cfg.checkpoint_dir) / f"{unit.key}.ckpt.pt"
        resume = checkpoint if checkpoint is not None and checkpoint.exists() else None
        started = time.perf_counter()
        bipo = train_bipo(model, train, cfg.bipo_config(None if checkpoint is None else str(checkpoint)),
                          resume_from=resume, progress=False, dataset=unit.dataset)
        seconds = time.perf_counter() - started  # (this invocation's share when resumed from a checkpoint)
        frames = [
            fast_propensities(model, test, bipo, cfg.multipliers, progress=False, vector_name="bipo").assign(method="bipo"),
            fast_propensities(model, test, bipo.normalize(caa_norm), cfg.multipliers, progress=False,
                              vector_name="bipo@caa_norm").assign(method="bipo@caa_norm"),
        ]
        table = pd.concat(frames, ignore_index=True)
        table["vector_norm"] = np.where(table["method"] == "bipo", bipo.norms()[bipo.hook_names[0]], caa_norm)
        out: UnitFiles = [(files[0], bipo)]
        if unit.dataset in cfg.all_pos_datasets:
            cache: dict = {}
            allpos = pd.concat([
                all_position_propensities(model, test, caa, cfg.all_pos_multipliers, "caa", cache),
                all_position_propensities(model, test, bipo.normalize(caa_norm), cfg.all_pos_multipliers,
                                          "bipo@caa_norm", cache),
            ], ignore_index=True).assign(positions="all")
            out.append((files[1], allpos))
        if checkpoint is not None:
            checkpoint.unlink(missing_ok=True)
        return out + [(files[-1], table.assign(train_seconds=seconds, n_train=len(train)))]

    def combine(self, out_dir: Path) -> dict[str, pd.DataFrame]:
        return combine_bipo_vs_caa(out_dir, self.config)


@torch.inference_mode()
def all_position_propensities(model, pairs, vector, multipliers, name: str, cache: dict,
                              batch_size: int = 8) -> pd.DataFrame:
    """Free-text propensity with ``m * vector`` added at every position (BiPO's training convention).

    ``cache`` keeps the unsteered (m = 0) scores, which are the same for every vector."""
    from interp_steer.data import encode_pair, pad_token_id
    from interp_steer.methods.response_logprobs import pair_logprobs, preference_batch
    from interp_steer.steering import steer

    encoded = [encode_pair(model.tokenizer, p) for p in pairs]
    pad = pad_token_id(model.tokenizer)
    records = []
    for m in multipliers:
        if float(m) == 0.0 and "zero" in cache:
            scores = cache["zero"]
        else:
            with steer(model, vector, multiplier=float(m), positions="all"):
                scores = torch.cat([pair_logprobs(model, preference_batch(encoded[i:i + batch_size], pad))
                                    for i in range(0, len(encoded), batch_size)])
            if float(m) == 0.0:
                cache["zero"] = scores
        for pair, (pos, neg) in zip(pairs, scores.tolist()):
            records.append({"sample_id": pair.id, "dataset": pair.dataset, "vector": name, "multiplier": float(m),
                            "propensity": pos - neg, "pos_logprob": pos, "neg_logprob": neg})
    return pd.DataFrame.from_records(records)


def combine_bipo_vs_caa(out_dir: str | Path, config: BipoVsCaaConfig) -> dict[str, pd.DataFrame]:
    """``propensities`` (every finished unit, with a ``spec`` column) and ``allpos`` (the every-position check,
    possibly empty); not written (the study's report saves what it shows)."""
    out_dir = Path(out_dir)
    job = BipoVsCaaJob(config)
    frames, allpos = [], []
    for unit in job.units():
        files = job.unit_files(unit)
        if (out_dir / files[-1]).exists():
            frames.append(read_table(out_dir / files[-1]).assign(spec=unit.dataset))
            if len(files) == 3:
                allpos.append(read_table(out_dir / files[1]).assign(spec=unit.dataset))
    return {"propensities": pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(),
            "allpos": pd.concat(allpos, ignore_index=True) if allpos else pd.DataFrame()}


def run_bipo_vs_caa(config: BipoVsCaaConfig, out_dir: str | Path, *, data_dir: str | Path | None = None,
                    model=None, executor=None, progress: bool = True,
                    time_budget_s: float | None = None) -> RunReport:
    """Run the comparison's missing units into ``out_dir`` (see :func:`~interp_steer.runs.runner.run_job`)."""
    return run_job(BipoVsCaaJob(config, data_dir), out_dir, executor=executor, model=model, progress=progress,
                   time_budget_s=time_budget_s)
