"""Which extraction method steers most reliably? Every registered pair method at one fixed layer, per dataset,
compared per sample (issue 28, the job skeleton of ``interp-steer study methods``).

One work unit per (dataset, method), independent and resumable on the runner::

    units/<method>__<dataset>.safetensors      the vector (extracted on the train part of the split)
    units/<method>__<dataset>.propensity.csv   propensities of the held-out pairs at every multiplier

**Matched norm.** Every method's vector is rescaled to the norm of the CAA vector extracted from the same train
pairs at the same layer (``|d̄|``), so a multiplier ``m`` moves the residual stream by the same length for every
method and the comparison is of directions, not of lengths (each unit re-extracts CAA, a cheap deterministic
pass, so units need not share files). The method's own norm is kept in the table (``own_norm``).

:func:`combine_method_study` gives per-sample steerability (slope of propensity on multiplier), per
method × dataset the mean slope (bootstrap CI) and the anti-steerable fraction (Wilson CI), and per dataset the
paired difference of each method's per-sample slopes against CAA's on the same held-out samples (bootstrap CI of
the mean difference). :func:`write_method_report` writes the tables, two method × dataset heat maps and a
markdown summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from interp_steer.errors import ConfigError
from interp_steer.runs.config import JobConfig, device_field, model_field, option_field
from interp_steer.runs.files import read_table
from interp_steer.runs.keys import dataset_stem
from interp_steer.runs.registry_pairs import RegistryPairs
from interp_steer.runs.runner import Job, RunReport, UnitFiles, run_job

DEFAULT_METHODS = ("caa", "pca_diff", "pca_centred", "probe", "mean_centring", "bipo", "reps")


@dataclass
class MethodStudyConfig(JobConfig):
    """What the method study computes: ``methods`` (registry names, CAA first as the reference) at ``layer`` on
    each of ``datasets`` (specs), extracted from ``n_train`` pairs and evaluated on ``n_test`` held-out pairs."""

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = (
        "model", "layer", "methods", "multipliers", "n_train", "n_test", "seed", "trained_steps",
    )
    JOB: ClassVar[str] = "method study"

    datasets: list[str]
    layer: int
    model: str = model_field()
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    multipliers: list[float] = option_field(default_factory=lambda: [-1.5, -0.75, 0.0, 0.75, 1.5],
                                            help="comma-separated steering multipliers (of the CAA-norm vector)")
    n_train: int | None = option_field(40, help="train pairs per dataset")
    n_test: int | None = option_field(50, help="held-out pairs per dataset")
    seed: int = option_field(0, help="seed of the stratified train/test split and the bootstrap")
    trained_steps: int = 30
    n_boot: int = 2000
    device: str = device_field()

    def __post_init__(self) -> None:
        from interp_steer.methods.registry import EXTRACTION_METHODS

        self.datasets, self.methods = list(self.datasets), list(self.methods)
        self.multipliers = [float(m) for m in self.multipliers]
        if not self.datasets or len(set(self.datasets)) != len(self.datasets):
            raise ConfigError(f"MethodStudyConfig.datasets must name each dataset once, got {self.datasets}")
        unknown = [m for m in self.methods if m not in EXTRACTION_METHODS or EXTRACTION_METHODS[m].from_pairs is None]
        if unknown:
            raise ConfigError(f"MethodStudyConfig.methods {unknown}: not pair-based registry methods")
        if not self.methods or self.methods[0] != "caa" or len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"MethodStudyConfig.methods must start with 'caa' (the reference) and name each method "
                              f"once, got {self.methods}")
        if len(set(self.multipliers)) < 2:
            raise ConfigError(f"MethodStudyConfig.multipliers needs ≥ 2 distinct values, got {self.multipliers}")

    def method_config(self, method: str):
        """The registry config of ``method`` (trained methods get ``trained_steps`` steps and the study's seed)."""
        from interp_steer.methods.registry import EXTRACTION_METHODS

        config_class = EXTRACTION_METHODS[method].config_class
        if method == "bipo":
            return config_class(layer=self.layer, max_steps=self.trained_steps, lr=0.03, seed=self.seed)
        if method == "reps":
            return config_class(layer=self.layer, max_steps=self.trained_steps, seed=self.seed)
        return config_class()


@dataclass(frozen=True)
class MethodUnit:
    dataset: str
    method: str

    @property
    def key(self) -> str:
        return f"{self.method}__{dataset_stem(self.dataset)}"


class MethodStudyJob(Job):
    """The study on the runner (pairs loaded where the unit runs, so Ray workers load their own)."""

    config: MethodStudyConfig

    def __init__(self, config: MethodStudyConfig, data_dir: str | Path | None = None) -> None:
        self.config = config
        self.data = RegistryPairs(None, 0.5, config.seed, config.n_train, config.n_test,
                                  None if data_dir is None else str(data_dir))

    def units(self) -> list[MethodUnit]:
        return [MethodUnit(d, m) for d in self.config.datasets for m in self.config.methods]

    def unit_files(self, unit: MethodUnit) -> list[str]:
        return [f"units/{unit.key}.safetensors", f"units/{unit.key}.propensity.csv"]

    def compute(self, unit: MethodUnit, model) -> UnitFiles:
        from interp_steer.evaluation.fast_engine import fast_propensities
        from interp_steer.methods import extract, extract_caa

        cfg = self.config
        train, test = self.data(unit.dataset)
        caa = extract_caa(model, train, [cfg.layer], progress=False, dataset=unit.dataset)
        caa_norm = caa.norms()[caa.hook_names[0]]
        own = caa if unit.method == "caa" else extract(unit.method, model, train, [cfg.layer],
                                                       cfg.method_config(unit.method), progress=False, dataset=unit.dataset)
        own_norm = own.norms()[own.hook_names[0]]
        vector = own.normalize(caa_norm)
        table = fast_propensities(model, test, vector, cfg.multipliers, progress=False, vector_name=unit.method)
        table = table.assign(method=unit.method, spec=unit.dataset, own_norm=own_norm, vector_norm=caa_norm,
                             n_train=len(train))
        files = self.unit_files(unit)
        return [(files[0], vector), (files[1], table)]

    def combine(self, out_dir: Path) -> dict[str, pd.DataFrame]:
        return combine_method_study(out_dir, self.config)


def run_method_study(config: MethodStudyConfig, out_dir: str | Path, *, model=None, executor=None,
                     data_dir: str | Path | None = None, progress: bool = True) -> RunReport:
    """Run (or resume) the study into ``out_dir`` and write its report (:func:`write_method_report`)."""
    report = run_job(MethodStudyJob(config, data_dir), out_dir, model=model, executor=executor, progress=progress)
    write_method_report(Path(out_dir), config)
    return report


# ------------------------------------------------------------------------------------------ combining
def _bootstrap_mean(values: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    from interp_steer.evaluation.uncertainty import bootstrap_ci

    if len(values) < 2:
        return float("nan"), float("nan")
    result = bootstrap_ci(values, "mean", n_boot=n_boot, seed=seed)
    return float(result.ci_low[0]), float(result.ci_high[0])


def combine_method_study(out_dir: str | Path, config: MethodStudyConfig) -> dict[str, pd.DataFrame]:
    """``per_sample`` slopes, ``summary`` (method × dataset with CIs) and ``paired`` (method − CAA per dataset)."""
    from interp_steer.evaluation.ab_baseline import wilson_interval
    from interp_steer.evaluation.metrics import steerability

    out_dir = Path(out_dir)
    job = MethodStudyJob(config)
    frames = [read_table(out_dir / job.unit_files(u)[1]) for u in job.units() if (out_dir / job.unit_files(u)[1]).exists()]
    if not frames:
        empty = pd.DataFrame()
        return {"per_sample": empty, "summary": empty, "paired": empty}
    props = pd.concat(frames, ignore_index=True)
    per_sample = steerability(props, keys=["spec", "method", "sample_id"])
    rows, paired = [], []
    for (spec, method), group in per_sample.groupby(["spec", "method"], sort=False):
        slopes = group["slope"].to_numpy(float)
        n_anti = int((slopes < 0).sum())
        low, high = _bootstrap_mean(slopes, config.n_boot, config.seed)
        a_low, a_high = wilson_interval(n_anti, len(slopes))
        rows.append({"spec": spec, "method": method, "n_samples": len(slopes), "mean_slope": float(slopes.mean()),
                     "mean_slope_ci_low": low, "mean_slope_ci_high": high, "anti_steerable_fraction": n_anti / len(slopes),
                     "anti_ci_low": a_low, "anti_ci_high": a_high})
    wide = per_sample.pivot_table(index=["spec", "sample_id"], columns="method", values="slope")
    for method in [m for m in config.methods if m != "caa" and m in wide.columns and "caa" in wide.columns]:
        for spec, block in wide.groupby(level="spec", sort=False):
            diff = (block[method] - block["caa"]).dropna().to_numpy(float)
            if len(diff):
                low, high = _bootstrap_mean(diff, config.n_boot, config.seed)
                paired.append({"spec": spec, "method": method, "n_samples": len(diff),
                               "mean_slope_difference": float(diff.mean()), "ci_low": low, "ci_high": high})
    return {"per_sample": per_sample, "summary": pd.DataFrame(rows), "paired": pd.DataFrame(paired)}


# ------------------------------------------------------------------------------------------ report
def write_method_report(out_dir: str | Path, config: MethodStudyConfig) -> Path:
    """``report/``: the three tables (CSV), heat maps of anti-steerable fraction and mean slope (method × dataset)
    and ``report.md`` with the tables and the matched-norm statement."""
    from interp_steer.analysis.markdown_tables import markdown_table
    from interp_steer.viz.plots import save_figure

    out_dir = Path(out_dir)
    tables = combine_method_study(out_dir, config)
    report = out_dir / "report"
    report.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(report / f"{name}.csv", index=False)
    summary = tables["summary"]
    lines = [f"# Method study: {config.model}, layer {config.layer}", "",
             "Every vector rescaled to the norm of the CAA vector from the same train pairs (matched norm); "
             f"multipliers {config.multipliers}; {config.n_test} held-out pairs per dataset at most.", ""]
    if summary.empty:
        (report / "report.md").write_text("\n".join(lines + ["No finished units yet."]) + "\n")
        return report / "report.md"
    for column, title, unit in (("anti_steerable_fraction", "Anti-steerable fraction", "fraction of samples"),
                                ("mean_slope", "Mean steerability slope", "propensity per unit multiplier")):
        grid = summary.pivot(index="method", columns="spec", values=column).reindex(
            [m for m in config.methods if m in set(summary["method"])])
        save_figure(_heat_map(grid, title, unit, config), report / f"heatmap_{column}.png")
        lines += [f"![{title}](heatmap_{column}.png)", ""]
    shown = summary.assign(
        mean_slope=summary.apply(lambda r: f"{r.mean_slope:.3g} [{r.mean_slope_ci_low:.3g}, {r.mean_slope_ci_high:.3g}]", axis=1),
        anti=summary.apply(lambda r: f"{r.anti_steerable_fraction:.2f} [{r.anti_ci_low:.2f}, {r.anti_ci_high:.2f}]", axis=1),
    )[["spec", "method", "n_samples", "mean_slope", "anti"]]
    lines += ["## Per method and dataset (95% CIs: bootstrap for the mean slope, Wilson for the fraction)", "",
              markdown_table(shown), ""]
    if not tables["paired"].empty:
        lines += ["## Paired per-sample slope differences against CAA (95% bootstrap CIs)", "",
                  markdown_table(tables["paired"]), ""]
    (report / "report.md").write_text("\n".join(lines) + "\n")
    return report / "report.md"


def _heat_map(grid: pd.DataFrame, title: str, unit: str, config: MethodStudyConfig):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * grid.shape[1], 1.0 + 0.5 * grid.shape[0]))
    image = ax.imshow(grid.to_numpy(float), aspect="auto", cmap="viridis")
    ax.set_xticks(range(grid.shape[1]), [str(c)[:24] for c in grid.columns], rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(grid.shape[0]), list(grid.index), fontsize=8)
    for (i, j), value in np.ndenumerate(grid.to_numpy(float)):
        ax.text(j, i, f"{value:.2g}", ha="center", va="center", fontsize=7, color="white")
    fig.colorbar(image, ax=ax, label=unit)
    ax.set_title(f"{title} — {config.model}, layer {config.layer}, matched CAA norm", fontsize=9)
    ax.set_xlabel("dataset")
    ax.set_ylabel("method")
    fig.tight_layout()
    return fig
