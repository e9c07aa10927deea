"""Which extraction method steers most reliably? Every registered pair method at one fixed layer, per dataset,
compared per sample (issue 28, ``interp-steer study methods``).

Independent, resumable units on the runner (Ray-ready: the job is picklable and every unit loads its own data)::

    units/<method>__<dataset>.safetensors            the vector (extracted on the train part of the split)
    units/<method>__<dataset>.kl.csv                 neutral-corpus KL per passage at each of ``kl_multipliers``
    units/<method>__<dataset>.propensity.csv         propensities of the held-out pairs at every multiplier
    units/prompting__<dataset>.baseline.csv          the prompting baseline (``prompting``)
    units/<method>__<dataset>__variants.csv          the method on the 5 prompt variants (``ood_datasets`` only)

**Matched norm.** Every method's vector is rescaled to the norm of the CAA vector extracted from the same train
pairs at the same layer (``|d̄|``), so a multiplier ``m`` moves the residual stream by the same length for every
method and the comparison is of directions, not of lengths (each unit re-extracts CAA, a cheap deterministic
pass, so units need not share files). The method's own norm is kept in the table (``own_norm``).

**Side effects at matched shift.** Equal norms do not give equal effects, so the neutral-corpus KL is compared
at the *matched shift*: per dataset, each method's multiplier ``m*`` at which its mean fitted propensity shift
equals CAA's at ``reference_multiplier`` (``m* = m_ref · s̄_CAA / s̄_method``; KL interpolated between the measured
``kl_multipliers``; :mod:`interp_steer.analysis.method_comparison`). The KL at matched norm (``m_ref``) is
reported beside it.

**Prompting baseline.** Per dataset, :func:`~interp_steer.evaluation.baseline.prompting_baseline` with the CAA
vector at ``±reference_multiplier``: the SYS_POS / SYS_NEG persona prompts' contrast and KL beside each method's
contrast at the same multipliers.

**ID→OOD.** For ``ood_datasets`` and ``ood_methods``, the method's vector is extracted on each of the 5 prompt
variants of the train pairs (rescaled to the BASE CAA norm); the BASE vector is evaluated on every variant and each
variant's vector on its own prompts, which is what the relative steerability ``slope(BASE→Y)/|slope(Y→Y)|`` needs.

The trained methods (``bipo``, ``reps``) run only on ``trained_datasets`` (all datasets when unset).
:meth:`MethodStudyJob.combine` reads the unit files into tables and :func:`method_tables` derives every reported
table; :func:`~interp_steer.runs.method_study_report.write_method_report` writes them (it takes the tables).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pandas as pd

from interp_steer.config import (
    TAN_MULTIPLIERS,
    JobConfig,
    device_field,
    model_field,
    multipliers_field,
    option_field,
    require_int,
    require_multipliers,
)
from interp_steer.config.keys import dataset_stem
from interp_steer.errors import ConfigError
from interp_steer.runs.files import read_table
from interp_steer.runs.registry_pairs import RegistryPairs
from interp_steer.runs.runner import Job, RunReport, UnitFiles, run_job

DEFAULT_METHODS = ("caa", "pca_diff", "pca_centred", "probe", "mean_centring", "bipo", "reps")
TRAINED_METHODS = ("bipo", "reps")
PARTS = ("steer", "prompting", "variants")


@dataclass
class MethodStudyConfig(JobConfig):
    """What the method study computes: ``methods`` (registry names, CAA first as the reference) at ``layer`` on
    each of ``datasets`` (specs), extracted from ``n_train`` pairs and evaluated on ``n_test`` held-out pairs
    (see the module docstring for the parts)."""

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = (
        "model", "layer", "methods", "multipliers", "n_train", "n_test", "seed", "trained_steps",
        "reference_multiplier", "kl_multipliers", "n_neutral", "trained_datasets", "ood_datasets", "ood_methods",
        "ood_n_test", "prompting",
    )
    JOB: ClassVar[str] = "method study"

    datasets: list[str]
    layer: int
    model: str = model_field()
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    multipliers: list[float] = multipliers_field(TAN_MULTIPLIERS,
                                                 help="comma-separated steering multipliers (of the CAA-norm vector)")
    n_train: int | None = option_field(40, help="train pairs per dataset")
    n_test: int | None = option_field(50, help="held-out pairs per dataset")
    seed: int = option_field(0, help="seed of the stratified train/test split and the bootstrap")
    trained_steps: int = 30
    n_boot: int = 2000
    reference_multiplier: float = 1.0
    kl_multipliers: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 3.0])
    n_neutral: int = 16
    trained_datasets: list[str] | None = None
    ood_datasets: list[str] = field(default_factory=list)
    ood_methods: list[str] | None = None
    ood_n_test: int | None = 20
    prompting: bool = True
    device: str = device_field()

    def __post_init__(self) -> None:
        from interp_steer.methods.registry import EXTRACTION_METHODS

        self.datasets, self.methods = list(self.datasets), list(self.methods)
        self.kl_multipliers = sorted(float(m) for m in self.kl_multipliers)
        self.reference_multiplier = float(self.reference_multiplier)
        self.ood_datasets = list(self.ood_datasets)
        if not self.datasets or len(set(self.datasets)) != len(self.datasets):
            raise ConfigError(f"MethodStudyConfig.datasets must name each dataset once, got {self.datasets}")
        unknown = [m for m in self.methods if m not in EXTRACTION_METHODS or EXTRACTION_METHODS[m].from_pairs is None]
        if unknown:
            raise ConfigError(f"MethodStudyConfig.methods {unknown}: not pair-based registry methods")
        if not self.methods or self.methods[0] != "caa" or len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"MethodStudyConfig.methods must start with 'caa' (the reference) and name each method "
                              f"once, got {self.methods}")
        require_multipliers(self)
        for name in ("n_train", "n_test", "ood_n_test"):
            require_int(self, name, optional=True)
        require_int(self, "trained_steps")
        require_int(self, "n_boot", 100)
        m = self.reference_multiplier
        if not m > 0 or not {m, -m, 0.0} <= set(self.multipliers):
            raise ConfigError(f"MethodStudyConfig.reference_multiplier {m:g} must be > 0 with -{m:g}, 0 and {m:g} among "
                              f"the multipliers {self.multipliers}")
        if not self.kl_multipliers or min(self.kl_multipliers) <= 0 or m > max(self.kl_multipliers):
            raise ConfigError(f"MethodStudyConfig.kl_multipliers must be > 0 and reach reference_multiplier {m:g}, "
                              f"got {self.kl_multipliers}")
        require_int(self, "n_neutral")
        for name in ("trained_datasets", "ood_datasets"):
            subset = getattr(self, name) or []
            if [d for d in subset if d not in self.datasets]:
                raise ConfigError(f"MethodStudyConfig.{name} {[d for d in subset if d not in self.datasets]}: not "
                                  "among the datasets")
        if self.ood_methods is not None and [x for x in self.ood_methods if x not in self.methods]:
            raise ConfigError(f"MethodStudyConfig.ood_methods {[x for x in self.ood_methods if x not in self.methods]}: "
                              "not among the methods")

    def method_config(self, method: str, reference_norm: float | None = None):
        """The registry config of ``method`` (trained methods get ``trained_steps`` steps and the study's seed;
        RePS trains its direction at ``reference_norm``, the CAA norm every method is compared at; mean-centring
        averages ``n_neutral`` neutral passages)."""
        from interp_steer.methods.registry import EXTRACTION_METHODS

        config_class = EXTRACTION_METHODS[method].config_class
        if method == "bipo":
            return config_class(layer=self.layer, max_steps=self.trained_steps, lr=0.03, seed=self.seed)
        if method == "reps":  # see :mod:`interp_steer.methods.reps` (``scale``)
            return config_class(layer=self.layer, max_steps=self.trained_steps, seed=self.seed, scale=reference_norm)
        if method == "mean_centring":
            return config_class(n_neutral=self.n_neutral)
        return config_class()

    def runs(self, method: str, dataset: str) -> bool:
        """Whether the steering unit of ``method`` on ``dataset`` is part of the study."""
        return method not in TRAINED_METHODS or self.trained_datasets is None or dataset in self.trained_datasets

    def variant_methods(self) -> list[str]:
        """The methods of the ID→OOD part (default: every method that is not trained)."""
        return list(self.ood_methods) if self.ood_methods is not None else [
            m for m in self.methods if m not in TRAINED_METHODS]


@dataclass(frozen=True)
class MethodUnit:
    """One unit: ``part`` ``steer`` (a method on a dataset), ``prompting`` (the baseline of a dataset; method
    ``caa``) or ``variants`` (a method on the 5 prompt variants of a dataset)."""

    dataset: str
    method: str
    part: str = "steer"

    @property
    def key(self) -> str:
        stem = dataset_stem(self.dataset)
        return {"steer": f"{self.method}__{stem}", "prompting": f"prompting__{stem}",
                "variants": f"{self.method}__{stem}__variants"}[self.part]


class MethodStudyJob(Job):
    """The study on the runner (pairs loaded where the unit runs, so Ray workers load their own)."""

    config: MethodStudyConfig

    def __init__(self, config: MethodStudyConfig, data_dir: str | Path | None = None) -> None:
        self.config = config
        self.data_dir = None if data_dir is None else str(data_dir)
        self.data = RegistryPairs(None, 0.5, config.seed, config.n_train, config.n_test, self.data_dir)
        self._activations: dict = {}  # the training pairs' activations, shared by the methods of one dataset

    def units(self) -> list[MethodUnit]:
        """Dataset by dataset, every part of a dataset together (so a stopped run leaves whole datasets)."""
        cfg = self.config
        units: list[MethodUnit] = []
        for d in cfg.datasets:
            units += [MethodUnit(d, m) for m in cfg.methods if cfg.runs(m, d)]
            units += [MethodUnit(d, "caa", "prompting")] if cfg.prompting else []
            units += [MethodUnit(d, m, "variants") for m in cfg.variant_methods() if d in cfg.ood_datasets]
        return units

    def unit_files(self, unit: MethodUnit) -> list[str]:
        if unit.part == "prompting":
            return [f"units/{unit.key}.baseline.csv"]
        if unit.part == "variants":
            return [f"units/{unit.key}.csv"]
        return [f"units/{unit.key}.safetensors", f"units/{unit.key}.kl.csv", f"units/{unit.key}.propensity.csv"]

    def compute(self, unit: MethodUnit, model) -> UnitFiles:
        from interp_steer.steering.activations import reuse_activations

        with reuse_activations(self._activations):
            return self._compute(unit, model)

    def _compute(self, unit: MethodUnit, model) -> UnitFiles:
        from interp_steer.runs import method_study_units as parts

        train, test = self.data(unit.dataset)
        files = self.unit_files(unit)
        if unit.part == "prompting":
            return [(files[0], parts.prompting_unit(model, self.config, unit.dataset, train, test))]
        if unit.part == "variants":
            return [(files[0], parts.variants_unit(model, self.config, unit.method, unit.dataset, train,
                                                   test[: self.config.ood_n_test]))]
        vector, kl, table = parts.steer_unit(model, self.config, unit.method, unit.dataset, train, test)
        return [(files[0], vector), (files[1], kl), (files[2], table)]

    def combine(self, out_dir: Path) -> dict[str, pd.DataFrame]:
        return combine_method_study(out_dir, self.config)


def run_method_study(config: MethodStudyConfig, out_dir: str | Path, *, model=None, executor=None,
                     data_dir: str | Path | None = None, progress: bool = True) -> RunReport:
    """Run (or resume) the study into ``out_dir`` and write its report into ``out_dir/report``."""
    from interp_steer.runs.method_study_report import write_method_report

    report = run_job(MethodStudyJob(config, data_dir), out_dir, model=model, executor=executor, progress=progress)
    write_method_report(report.tables, Path(out_dir) / "report", describe(config))
    return report


def describe(config: MethodStudyConfig) -> dict:
    """What the report says about the run (model, layer, sizes, multipliers)."""
    return {"model": config.model, "layer": config.layer, "multipliers": config.multipliers, "n_train": config.n_train,
            "n_test": config.n_test, "reference_multiplier": config.reference_multiplier,
            "kl_multipliers": config.kl_multipliers, "n_neutral": config.n_neutral, "methods": config.methods,
            "trained_steps": config.trained_steps, "ood_n_test": config.ood_n_test}


# ------------------------------------------------------------------------------------------ combining
def read_unit_tables(out_dir: str | Path, config: MethodStudyConfig) -> dict[str, pd.DataFrame]:
    """The finished units' raw tables: ``propensities``, ``kl``, ``baseline`` and ``variant_propensities``."""
    out_dir = Path(out_dir)
    job = MethodStudyJob(config)
    found: dict[str, list[pd.DataFrame]] = {"propensities": [], "kl": [], "baseline": [], "variant_propensities": []}
    for unit in job.units():
        files = job.unit_files(unit)
        if not (out_dir / files[-1]).exists():
            continue
        if unit.part == "steer":
            found["propensities"].append(read_table(out_dir / files[2]))
            found["kl"].append(read_table(out_dir / files[1]))
        elif unit.part == "prompting":
            found["baseline"].append(read_table(out_dir / files[0]).assign(spec=unit.dataset))
        else:
            found["variant_propensities"].append(read_table(out_dir / files[0]))
    return {k: pd.concat(v, ignore_index=True) if v else pd.DataFrame() for k, v in found.items()}


def combine_method_study(out_dir: str | Path, config: MethodStudyConfig) -> dict[str, pd.DataFrame]:
    """Every table of the report (:func:`method_tables`) from the finished units in ``out_dir``."""
    raw = read_unit_tables(out_dir, config)
    return method_tables(raw, methods=config.methods, reference_multiplier=config.reference_multiplier,
                         n_boot=config.n_boot, seed=config.seed)


def method_tables(raw: dict[str, pd.DataFrame], *, methods: list[str], reference_multiplier: float, n_boot: int = 2000,
                  seed: int = 0) -> dict[str, pd.DataFrame]:
    """From the raw tables (:func:`read_unit_tables`): ``per_sample`` slopes, ``summary`` (method × dataset with
    CIs), ``paired`` (method − CAA per dataset), ``matched_kl``, ``contrast`` (methods beside prompting), ``ood``
    (relative steerability BASE→variant), ``correlation`` / ``variance`` (dataset or method?) and ``ranking``."""
    from interp_steer.analysis.method_comparison import (
        contrast_table,
        matched_shift_kl,
        method_summary,
        paired_against_reference,
    )
    from interp_steer.analysis.method_ranking import dataset_or_method, method_ranking, ood_relative
    from interp_steer.evaluation.metrics import steerability

    props = raw["propensities"]
    names = ["per_sample", "summary", "paired", "matched_kl", "contrast", "ood", "correlation", "variance", "ranking",
             "norms"]
    if props.empty:
        return {name: pd.DataFrame() for name in names}
    per_sample = steerability(props, keys=["spec", "method", "sample_id"])
    summary = method_summary(per_sample, n_boot=n_boot, seed=seed)
    order = {m: i for i, m in enumerate(methods)}
    summary = summary.sort_values("method", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    matched = (matched_shift_kl(per_sample, raw["kl"], reference_multiplier, n_boot=n_boot, seed=seed)
               if not raw["kl"].empty else pd.DataFrame())
    ood = ood_relative(raw["variant_propensities"], n_boot=n_boot, seed=seed)
    split = dataset_or_method(summary, methods, n_boot=n_boot, seed=seed)
    return {"per_sample": per_sample, "summary": summary,
            "paired": paired_against_reference(per_sample, n_boot=n_boot, seed=seed), "matched_kl": matched,
            "contrast": contrast_table(props, raw["baseline"], raw["kl"], reference_multiplier, n_boot=n_boot, seed=seed),
            "ood": ood, "correlation": split["correlation"], "variance": split["variance"],
            "ranking": method_ranking(summary, matched, ood, n_boot=n_boot, seed=seed),
            "norms": vector_norms(props, methods)}


def vector_norms(props: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Per method and dataset: the vector's own norm before rescaling (``own_norm``), the CAA norm it was rescaled
    to (``caa_norm``) and their ratio (one row per unit; the unit files carry both norms on every row)."""
    if props.empty or "own_norm" not in props.columns:
        return pd.DataFrame(columns=["spec", "method", "own_norm", "caa_norm", "ratio"])
    rows = props.groupby(["spec", "method"], sort=False)[["own_norm", "vector_norm"]].first().reset_index()
    rows = rows.rename(columns={"vector_norm": "caa_norm"}).assign(ratio=lambda f: f["own_norm"] / f["caa_norm"])
    order = {m: i for i, m in enumerate(methods)}
    return rows.sort_values("method", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
