"""The main job behind ``make demo``: extract, generate, measure, cost and plot on the embedded model, on the runner.

Units (each resumable; a rerun into the same directory reuses the finished ones):

* ``vector`` — the CAA vector at ``eval_layer`` (``caa_layer<L>.safetensors``, with its provenance). The CAA
  directions of all extraction layers come from one activation pass and are cached on the job.
* ``generations`` — greedy steered completions of :data:`DEMO_PROMPTS` at ``−g / 0 / +g``
  (``generations.json``), all rows in one batched decode loop (one multiplier per row).
* ``propensity`` — the propensity of every held-out pair at every multiplier and every extraction layer, from one
  fast-engine pass (:func:`~interp_steer.evaluation.fast_engine.fast_propensities`, ``units/propensity.csv``).
* ``side_effects`` — neutral-corpus KL(unsteered ‖ steered) and ΔNLL per passage and multiplier at ``eval_layer``
  on ``n_neutral`` passages (``units/side_effects.csv``).
* ``baseline`` — the SYS± persona-prompting baseline beside steering at ``±`` the largest multiplier
  (``units/baseline.csv``).

The combined outputs are ``propensity.csv``, ``layer_summary.csv`` (per layer, mean slope with its bootstrap 95%
interval), ``steerability.csv`` (per sample), ``steerability_distribution.csv``, ``side_effects.csv`` (per
multiplier at ``eval_layer``: shift, KL, ΔNLL with 95% intervals), ``baseline.csv``, ``timings.csv`` and the plots
``propensity_curves.png`` and ``steerability_distribution.png``. Everything here calls the same library functions a
notebook would; the CLI only parses options.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

import numpy as np
import pandas as pd

from interp_steer.errors import ConfigError, InterpSteerError
from interp_steer.runs.files import read_table, write_table_atomic
from interp_steer.runs.job_configs import DemoConfig  # noqa: F401  (re-exported: the config lives with the others)
from interp_steer.runs.runner import Job, UnitFiles, run_job
from interp_steer.runs.study_config import SLOPE_UNITS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from interp_steer.evaluation.side_effects import NeutralSet
    from interp_steer.steering import SteeringVector

DEMO_PROMPTS = ("What do you think about rainy Monday mornings?", "Describe your feelings about cooking dinner.")
STEPS = ("load", "extract", "generate", "propensities", "side effects", "baseline", "tables + plots")
"""The demo's timed steps, in order (one progress line each)."""
UNIT_STEP = {"vector": "extract", "generations": "generate", "propensity": "propensities",
             "side_effects": "side effects", "baseline": "baseline"}
TIMING_COLUMNS = ["step", "wall_s", "cpu_s", "load_1min", "reused"]
SLOPE_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


@dataclass(frozen=True)
class DemoUnit:
    """``vector``, ``generations``, ``propensity`` (all layers), ``side_effects`` or ``baseline``."""

    kind: str

    @property
    def key(self) -> str:
        return self.kind


class DemoJob(Job):
    """The demo's units for a model with the given resolved ``layers``."""

    config: DemoConfig

    UNIT_FILES: ClassVar[dict[str, str]] = {
        "generations": "generations.json", "propensity": "units/propensity.csv",
        "side_effects": "units/side_effects.csv", "baseline": "units/baseline.csv",
    }

    def __init__(self, config: DemoConfig, layers: list[int]) -> None:
        self.config, self.layers = config, list(layers)
        self._split = None
        self._vectors: dict[int, SteeringVector] | None = None
        self._neutral: NeutralSet | None = None
        # tables computed by earlier units of this process, reused by the baseline (a resumed run or a remote worker
        # has none and recomputes the rows it needs)
        self._computed: dict[str, pd.DataFrame] = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_neutral"] = None  # recomputed by each worker
        state["_computed"] = {}
        return state

    def units(self) -> list[DemoUnit]:
        return [DemoUnit(kind) for kind in UNIT_STEP]

    def unit_files(self, unit: DemoUnit) -> list[str]:
        if unit.kind == "vector":
            return [f"caa_layer{self.config.eval_layer}.safetensors"]
        return [self.UNIT_FILES[unit.kind]]

    def split(self):
        """``(train, test)``: the seeded split's first ``n_train`` training pairs and its held-out pairs."""
        if self._split is None:
            from interp_steer.data import DataSplit, load_dataset

            cfg = self.config
            pairs = load_dataset(cfg.dataset, data_dir=cfg.data_dir, framing=cfg.framing)
            self._split = DataSplit.capped(cfg.n_test, len(pairs), cfg.seed, n_train=cfg.n_train).split(pairs)
        return self._split

    def vectors(self, model) -> dict:
        """One single-layer CAA vector per layer, from one activation pass over the training pairs (cached)."""
        if self._vectors is None:
            from interp_steer.methods import collect_contrastive_activations, mean_difference
            from interp_steer.models import describe_processing
            from interp_steer.steering import Provenance, SteeringVector

            cfg, (train, _) = self.config, self.split()
            acts = collect_contrastive_activations(model, train, self.layers, progress=False)
            vectors = {}
            for hook_name, direction in mean_difference(acts).items():
                layer = int(hook_name.split(".")[1])
                provenance = Provenance(model=cfg.model, method="caa", dataset=cfg.dataset, n_pairs=len(train),
                                        read_position=acts.read_position, layers=[layer],
                                        model_processing=describe_processing(model), extra={"framing": cfg.framing})
                vectors[layer] = SteeringVector({hook_name: direction}, provenance)
            self._vectors = vectors
        return self._vectors

    def neutral(self, model) -> NeutralSet:
        """The first ``n_neutral`` (register-interleaved) neutral passages with their unsteered continuations."""
        if self._neutral is None:
            from interp_steer.evaluation.side_effects import prepare_neutral

            self._neutral = prepare_neutral(model, n=self.config.n_neutral,
                                            continuation_tokens=self.config.continuation_tokens)
        return self._neutral

    def compute(self, unit: DemoUnit, model) -> UnitFiles:
        cfg = self.config
        vectors = self.vectors(model)
        main = vectors[cfg.eval_layer]
        files = self.unit_files(unit)
        if unit.kind == "vector":
            return [(files[0], main)]
        if unit.kind == "generations":
            return [(files[0], demo_generations(model, main, cfg.generation_multipliers, cfg.max_new_tokens))]
        if unit.kind == "propensity":
            from interp_steer.evaluation.fast_engine import fast_propensities

            self._computed["propensity"] = fast_propensities(model, self.split()[1], vectors, cfg.multipliers,
                                                             progress=False)
            return [(files[0], self._computed["propensity"])]
        if unit.kind == "side_effects":
            from interp_steer.evaluation.side_effects import neutral_side_effects

            side = neutral_side_effects(model, self.neutral(model), main, cfg.multipliers)
            side.insert(0, "layer", cfg.eval_layer)
            self._computed["side_effects"] = side
            return [(files[0], side)]
        return [(files[0], self.baseline(model, main))]

    def baseline(self, model, vector: SteeringVector) -> pd.DataFrame:
        """The prompting baseline table at ``config.baseline_multiplier`` (no rows when there is no positive
        multiplier or no persona sentences for the dataset; ``note`` then says why)."""
        from interp_steer.evaluation.baseline import BASELINE_COLUMNS, baseline_sentences, prompting_baseline

        cfg = self.config
        m = cfg.baseline_multiplier
        train, test = self.split()
        try:
            if m is None:
                raise ConfigError("no positive multiplier to compare with the persona prompts")
            sentences = baseline_sentences(cfg.dataset, train)
        except InterpSteerError as exc:
            return pd.DataFrame([{"note": f"no prompting baseline: {exc}"}], columns=[*BASELINE_COLUMNS, "note"])
        # the steered arms at ±m are rows the propensity and side-effect steps of this run already computed
        table = prompting_baseline(model, test, vector, m, sentences=sentences, neutral=self.neutral(model),
                                   engine="fast", n_boot=cfg.n_boot, seed=cfg.seed,
                                   steered=self._computed.get("propensity"),
                                   steered_neutral=self._computed.get("side_effects"))
        return table.dropna(axis=1, how="all").assign(note="")

    def combine(self, out_dir: Path) -> dict[str, pd.DataFrame]:
        return combine_demo(out_dir, self.config)


def demo_generations(model, vector: SteeringVector, multipliers: Sequence[float], max_new_tokens: int,
                     prompts: Sequence[str] = DEMO_PROMPTS) -> list[dict[str, str]]:
    """``[{"prompt": …, "x-4": …, "x+0": …, "x+4": …}, …]``: greedy completions of each chat-templated prompt at
    each multiplier, all prompts × multipliers in one :func:`~interp_steer.steering.generate_batch` call."""
    from interp_steer.steering import chat_prompt, generate_batch

    texts = [chat_prompt(model, p) for p in prompts]
    rows = [(i, float(m)) for i in range(len(prompts)) for m in multipliers]
    outs = generate_batch(model, [texts[i] for i, _ in rows], vector, [m for _, m in rows],
                          max_new_tokens=max_new_tokens)
    result: list[dict[str, str]] = [{"prompt": p} for p in prompts]
    for (i, m), text in zip(rows, outs):
        result[i][f"x{m:+g}"] = text.strip()
    return result


def layer_summary_with_ci(per_sample: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
    """:func:`~interp_steer.evaluation.summarize_steerability` per layer plus ``mean_slope_lo`` / ``_hi``: the
    percentile-bootstrap 95% interval of the mean slope over samples, and ``anti_steerable_lo`` / ``_hi``: the
    percentile-bootstrap 95% interval of the anti-steerable fraction over samples (the table in :mod:`interp_steer.stats`)."""
    from interp_steer.evaluation import summarize_steerability
    from interp_steer.stats.intervals import anti_steerable_interval, mean_interval

    summary = summarize_steerability(per_sample, by=["layer"])
    slopes = [per_sample.loc[per_sample.layer == layer, "slope"] for layer in summary["layer"]]
    bounds = [mean_interval(s, n_boot=n_boot, seed=seed)[1:] for s in slopes]
    at = summary.columns.get_loc("mean_slope") + 1
    summary.insert(at, "mean_slope_lo", [lo for lo, _ in bounds])
    summary.insert(at + 1, "mean_slope_hi", [hi for _, hi in bounds])
    if "anti_steerable_fraction" in summary.columns:
        anti = [anti_steerable_interval(s, n_boot=n_boot, seed=seed)[1:] for s in slopes]
        at = summary.columns.get_loc("anti_steerable_fraction") + 1
        summary.insert(at, "anti_steerable_lo", [lo for lo, _ in anti])
        summary.insert(at + 1, "anti_steerable_hi", [hi for _, hi in anti])
    return summary


def slope_distribution(per_sample: pd.DataFrame) -> pd.DataFrame:
    """Per layer: ``n_samples``, min, the :data:`SLOPE_QUANTILES` (``q10`` … ``q90``), max and the
    anti-steerable fraction of the per-sample slopes."""
    records = []
    for layer, group in per_sample.groupby("layer", sort=True):
        slopes = group["slope"].to_numpy(dtype=np.float64)
        rec: dict[str, Any] = {"layer": int(layer), "n_samples": len(slopes), "min": float(slopes.min())}
        rec.update({f"q{round(q * 100):02d}": float(v) for q, v in zip(SLOPE_QUANTILES, np.quantile(slopes, SLOPE_QUANTILES))})
        rec.update({"max": float(slopes.max()), "anti_steerable_fraction": float((slopes < 0).mean())})
        records.append(rec)
    return pd.DataFrame.from_records(records)


def combine_demo(out_dir: Path, config: DemoConfig) -> dict[str, pd.DataFrame]:
    """The combined tables of the finished units in ``out_dir`` (written there): ``table`` (propensity.csv),
    ``per_sample`` (steerability.csv), ``summary`` (layer_summary.csv), ``distribution``
    (steerability_distribution.csv), ``side_effects`` (side_effects.csv) and ``baseline`` (baseline.csv)."""
    from interp_steer.evaluation import steerability
    from interp_steer.evaluation.settings import tune_summary

    files = DemoJob.UNIT_FILES
    out: dict[str, pd.DataFrame] = {}
    if (out_dir / files["propensity"]).exists():
        table = read_table(out_dir / files["propensity"])
        per_sample = steerability(table)
        out.update(table=table, per_sample=per_sample,
                   summary=layer_summary_with_ci(per_sample, config.n_boot, config.seed),
                   distribution=slope_distribution(per_sample))
        if (out_dir / files["side_effects"]).exists():
            neutral = read_table(out_dir / files["side_effects"])
            main = table[table["layer"] == config.eval_layer]
            side = tune_summary(main, neutral, n_boot=config.n_boot, seed=config.seed)
            out["side_effects"] = side.drop(columns=[c for c in side.columns if c.startswith("format_mass")])
    if (out_dir / files["baseline"]).exists():
        out["baseline"] = read_table(out_dir / files["baseline"])
    names = {"table": "propensity", "per_sample": "steerability", "summary": "layer_summary",
             "distribution": "steerability_distribution", "side_effects": "side_effects", "baseline": "baseline"}
    for key, frame in out.items():
        write_table_atomic(frame, out_dir / f"{names[key]}.csv")
    return out


def plot_slope_distribution(per_sample: pd.DataFrame, eval_layer: int, slope_units: str,
                            title: str | None = None) -> Figure:
    """Histogram of per-sample steerability at each layer (``eval_layer`` filled, the others as outlines), with the
    mean of each layer as a dashed line; the sample size is in the title."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    slopes = per_sample["slope"].to_numpy(dtype=np.float64)
    bins = np.linspace(min(slopes.min(), 0.0), max(slopes.max(), 0.0), 25).tolist()
    colours = plt.get_cmap("viridis")(np.linspace(0.1, 0.85, per_sample["layer"].nunique()))
    for colour, (layer, group) in zip(colours, per_sample.groupby("layer", sort=True)):
        values = group["slope"].to_numpy(dtype=np.float64)
        main = int(layer) == eval_layer
        ax.hist(values, bins=bins, histtype="stepfilled" if main else "step", alpha=0.45 if main else 1.0,
                color=colour, lw=1.5, label=f"layer {int(layer)}{' (eval)' if main else ''}: n={len(values)}")
        ax.axvline(values.mean(), color=colour, ls="--", lw=1.2, label=f"layer {int(layer)} mean {values.mean():.3g}")
    ax.axvline(0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel(f"per-sample steerability ({slope_units})")
    ax.set_ylabel("samples (count)")
    n = int(per_sample.groupby("layer").size().max())
    ax.set_title(title or f"Per-sample steerability (n={n} held-out pairs per layer)")
    ax.legend(fontsize=7, loc="best")
    return fig


@dataclass
class StepClock:
    """Wall and process CPU time of each step of a run, with the 1-minute load average at its end."""

    echo: Callable[[str], None] = print
    rows: list[dict] = field(default_factory=list)
    _wall: float = field(default_factory=time.perf_counter)
    _cpu: float = field(default_factory=time.process_time)

    def mark(self, step: str, *, reused: bool = False, note: str = "") -> dict:
        """Close ``step`` (timed since the previous mark), print its progress line and return its row."""
        wall, cpu = time.perf_counter(), time.process_time()
        row = {"step": step, "wall_s": round(wall - self._wall, 3), "cpu_s": round(cpu - self._cpu, 3),
               "load_1min": round(os.getloadavg()[0], 2), "reused": reused}
        self._wall, self._cpu = wall, cpu
        self.rows.append(row)
        index = STEPS.index(step) + 1 if step in STEPS else len(self.rows)
        state = "reused" if reused else f"{row['wall_s']:6.1f} s wall, {row['cpu_s']:6.1f} s CPU"
        self.echo(f"[{index}/{len(STEPS)}] {step:<15} {state} (load {row['load_1min']:.2f}){note}")
        return row

    def table(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows, columns=TIMING_COLUMNS)
        total = {"step": "total", "wall_s": round(frame.wall_s.sum(), 3), "cpu_s": round(frame.cpu_s.sum(), 3),
                 "load_1min": round(os.getloadavg()[0], 2), "reused": False}
        return pd.concat([frame, pd.DataFrame([total])], ignore_index=True)


def run_demo(config: DemoConfig, out_dir: Path, echo: Callable[[str], None] = print, *, executor=None) -> dict:
    """Run the demo into ``out_dir`` (see the module docstring for its files), print what it found and one
    progress line per step (:data:`STEPS`: wall time, process CPU time, load average). A rerun into the same
    directory reuses the finished units. Returns the combined tables plus ``timings`` and the paths."""
    from interp_steer.runs.runner import preflight

    out_dir = preflight(config, out_dir)
    clock = StepClock(echo)
    echo(f"loading {config.model} …")
    from interp_steer.models import load_model

    model = load_model(config.model, device=config.device)
    clock.mark("load")
    job = DemoJob(config, config.layer_list(model.cfg.n_layers))
    train, test = job.split()
    echo(f"{config.dataset} ({config.framing}): {len(train)} train / {len(test)} held-out pairs; layers {job.layers}")
    computed: set[str] = set()

    def unit_done(unit: DemoUnit) -> None:
        computed.add(unit.key)
        clock.mark(UNIT_STEP[unit.kind])

    report = run_job(job, out_dir, model=model, executor=executor, progress=False, on_unit_done=unit_done)
    for unit in job.units():
        if unit.key in report.reused:
            clock.mark(UNIT_STEP[unit.kind], reused=True)
    report.raise_if_failed()
    tables = report.tables
    paths = _report(config, job, out_dir, tables, echo)
    clock.mark("tables + plots")
    timings = clock.table()
    write_table_atomic(timings, out_dir / "timings.csv")
    from interp_steer.report.console import paths_block

    names = [*(p.name for p in paths.values()), "propensity.csv", "steerability.csv", "layer_summary.csv",
             "steerability_distribution.csv", "side_effects.csv", "baseline.csv", "generations.json", "timings.csv"]
    echo("\n" + paths_block([out_dir / n for n in names], f"wrote ({timings.wall_s.iloc[-1]:.0f} s wall, "
                                                           f"{timings.cpu_s.iloc[-1]:.0f} s CPU after import)"))
    return {**tables, "timings": timings, "vector_path": paths["vector"], "plot": paths["curves"],
            "distribution_plot": paths["distribution"]}


def _report(config: DemoConfig, job: DemoJob, out_dir: Path, tables: dict, echo: Callable[[str], None]) -> dict[str, Path]:
    """Print the demo's findings and draw its plots; returns the vector and plot paths."""
    from interp_steer.steering import SteeringVector
    from interp_steer.viz.plots import plot_propensity_curves, save_figure

    vector_path = out_dir / f"caa_layer{config.eval_layer}.safetensors"
    main_vector = SteeringVector.load(vector_path)
    from interp_steer.runs.demo_console import print_findings, vector_line

    echo("\n" + vector_line(vector_path, main_vector.norms()[main_vector.hook_names[0]], main_vector.provenance.method,
                             main_vector.provenance.n_pairs, config.dataset))
    g = config.generation_multiplier
    echo(f"\nSteered generations at layer {config.eval_layer} (multiplier −{g:g} / 0 / +{g:g}):")
    for row in json.loads((out_dir / "generations.json").read_text()):
        echo(f"  {row['prompt']}")
        for mult in config.generation_multipliers:
            echo(f"    [{mult:+g}] {' '.join(str(row[f'x{mult:+g}']).split())!r}")
    table, n_test = tables["table"], len(job.split()[1])
    main_table = table[table["layer"] == config.eval_layer]
    print_findings(echo, tables=tables, layer=config.eval_layer, framing=config.framing, n_test=n_test,
                   baseline_multiplier=config.baseline_multiplier, n_boot=config.n_boot, seed=config.seed)

    curves = save_figure(plot_propensity_curves(
        main_table, title=f"CAA on {config.dataset} ({config.framing}), layer {config.eval_layer}, {config.model}"),
        out_dir / "propensity_curves.png")
    kind = str(main_table["kind"].iloc[0]) if "kind" in main_table.columns else config.framing
    distribution = save_figure(plot_slope_distribution(
        tables["per_sample"], config.eval_layer, SLOPE_UNITS.get(kind, "propensity per unit multiplier"),
        title=f"Per-sample steerability, CAA on {config.dataset} ({config.model}), n={n_test} held-out pairs per layer"),
        out_dir / "steerability_distribution.png")
    return {"vector": vector_path, "curves": curves, "distribution": distribution}
