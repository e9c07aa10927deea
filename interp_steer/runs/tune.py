"""``tune`` as a runner job: scan layers × multipliers for behaviour shift and side effects, recommend a setting.

One work unit per layer (:class:`TuneUnit`). A unit takes the layer's vector (CAA on the train split, or the
layer's direction from a given vector file), expresses it in the chosen multiplier units
(:mod:`interp_steer.evaluation.units`), and on the **held-out** split computes with the fast engine the
propensity at every multiplier, plus the neutral-corpus KL / ΔNLL at every multiplier and, for A/B data, the
answer-format mass. Its files::

    units/L012.vector.safetensors   the vector as steered (rescaled for --units norm)
    units/L012.neutral.<fmt>        kl, dnll per (passage, multiplier)
    units/L012.answers.<fmt>        format_mass per (A/B sample, multiplier) (no rows for free text)
    units/L012.propensity.<fmt>     propensities per (sample, multiplier)   (last: marks the unit done)

:func:`~interp_steer.evaluation.settings.tune_summary` combines them into one row per (layer, multiplier) with
bootstrap 95% intervals; :func:`~interp_steer.evaluation.settings.recommend` picks the setting (see
:mod:`interp_steer.evaluation.settings`). :func:`run_tune` runs the job and then the post-run phase shared with
``evaluate`` (:mod:`interp_steer.runs.post_run`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import pandas as pd

from interp_steer.config import JobConfig  # noqa: F401
from interp_steer.errors import ConfigError, DataFormatError, InterpSteerError
from interp_steer.evaluation.settings import SUMMARY_METRICS, chosen_setting, recommend, tune_summary  # noqa: F401
from interp_steer.evaluation.side_effects import (
    NeutralSet,
    answer_scores,
    neutral_side_effects,
    prepare_neutral,
)
from interp_steer.evaluation.units import in_units, mean_residual_norm, with_units
from interp_steer.runs.files import read_table, write_table_atomic, write_text_atomic
from interp_steer.runs.job_configs import TuneConfig  # noqa: F401
from interp_steer.runs.registry_pairs import RegistryPairs
from interp_steer.runs.runner import Job, RunReport, UnitFiles, run_job
from interp_steer.steering.hook_names import DEFAULT_SITE
from interp_steer.steering.vector import SteeringVector


@dataclass(frozen=True)
class TuneUnit:
    """One layer of a tune run."""

    layer: int

    @property
    def key(self) -> str:
        return f"L{self.layer:03d}"


class TuneJob(Job):
    """The tune scan on the runner (see the module docstring). ``data``: a function or mapping giving the
    ``(train_pairs, test_pairs)`` of the config's dataset (default: the registry with the config's split)."""

    config: TuneConfig

    def __init__(self, config: TuneConfig, data: Callable | Mapping | None = None, data_dir: str | None = None) -> None:
        self.config = config
        self.data = data if data is not None else RegistryPairs(config.framing, config.test_fraction, config.seed,
                                                                config.n_train, config.n_test, data_dir)
        self._neutral: NeutralSet | None = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_neutral"] = None  # recomputed by each worker
        return state

    def units(self) -> list[TuneUnit]:
        return [TuneUnit(layer) for layer in self.config.layers]

    def _files(self, unit: TuneUnit) -> dict[str, str]:
        fmt = self.config.table_format
        return {"vector": f"units/{unit.key}.vector.safetensors", "neutral": f"units/{unit.key}.neutral.{fmt}",
                "answers": f"units/{unit.key}.answers.{fmt}", "propensity": f"units/{unit.key}.propensity.{fmt}"}

    def unit_files(self, unit: TuneUnit) -> list[str]:
        return list(self._files(unit).values())

    def pairs(self):
        data = self.data
        return data[self.config.dataset] if isinstance(data, Mapping) else data(self.config.dataset)

    def neutral(self, model) -> NeutralSet:
        if self._neutral is None:
            self._neutral = prepare_neutral(model, n=self.config.n_neutral,
                                            continuation_tokens=self.config.continuation_tokens,
                                            batch_size=self.config.batch_size)
        return self._neutral

    def layer_vector(self, unit: TuneUnit, model, train) -> SteeringVector:
        cfg = self.config
        if cfg.vector is not None:
            return SteeringVector.load(cfg.vector).select(unit.layer)
        from interp_steer.methods.caa import extract_caa

        if not train:
            raise ConfigError(f"dataset {cfg.dataset!r}: the train split is empty; lower --test-fraction")
        return extract_caa(model, train, [unit.layer], batch_size=cfg.batch_size, progress=False, dataset=cfg.dataset)

    def compute(self, unit: TuneUnit, model) -> UnitFiles:
        cfg = self.config
        train, test = self.pairs()
        if not test:
            raise ConfigError(f"dataset {cfg.dataset!r}: the held-out split is empty")
        neutral = self.neutral(model)
        vector = self.layer_vector(unit, model, train)
        vector.check_fits(model)
        hook = vector.hook_names[0]
        reference = mean_residual_norm(model, [hook], list(neutral.tokens))[hook] if cfg.units == "norm" else None
        scaled = in_units(vector, cfg.units, reference)
        steered = scaled.vector.to(model.cfg.device, dtype=model.cfg.dtype)
        if hook.endswith("." + DEFAULT_SITE):
            from interp_steer.evaluation.fast_engine import fast_propensities

            props = fast_propensities(model, test, steered, cfg.multipliers, progress=False,
                                      vector_name=f"tune:{cfg.dataset}")
        else:
            from interp_steer.evaluation.propensity import compute_propensities

            props = compute_propensities(model, test, steered, cfg.multipliers, batch_size=cfg.batch_size,
                                         vector_name=f"tune:{cfg.dataset}")
        props["dataset"] = cfg.dataset
        side = neutral_side_effects(model, neutral, steered, cfg.multipliers, batch_size=cfg.batch_size)
        side.insert(0, "layer", unit.layer)
        if all(p.kind == "ab" for p in test):
            answers = answer_scores(model, test, steered, cfg.multipliers, batch_size=cfg.batch_size)
            answers["dataset"] = cfg.dataset
        else:
            answers = pd.DataFrame(columns=["sample_id", "dataset", "multiplier", "is_A", "logit_diff", "correct",
                                            "pos_prob", "format_mass"])
        answers.insert(0, "layer", unit.layer)
        files = self._files(unit)
        return [(files["vector"], scaled.vector), (files["neutral"], with_units(side, scaled)),
                (files["answers"], with_units(answers, scaled)), (files["propensity"], with_units(props, scaled))]

    def combine(self, out_dir: Path) -> dict[str, pd.DataFrame]:
        return combine_tune(out_dir, self.config)


def combine_tune(out_dir: str | Path, config: TuneConfig) -> dict[str, pd.DataFrame]:
    """Concatenate the finished units' tables and build the (layer, multiplier) summary with its recommendation;
    writes ``propensities``, ``neutral``, ``answers`` and ``summary`` tables into ``out_dir``."""
    out_dir = Path(out_dir)
    fmt = config.table_format
    tables: dict[str, list[pd.DataFrame]] = {"propensities": [], "neutral": [], "answers": []}
    job = TuneJob(config, data={})
    for unit in job.units():
        files = job._files(unit)
        if not (out_dir / files["propensity"]).exists():
            continue
        tables["propensities"].append(read_table(out_dir / files["propensity"]))
        tables["neutral"].append(read_table(out_dir / files["neutral"]))
        answers = read_table(out_dir / files["answers"])
        if len(answers):
            tables["answers"].append(answers)
    if not tables["propensities"]:
        raise DataFormatError(f"{out_dir} has no finished tune units yet")
    combined = {name: (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()) for name, frames in tables.items()}
    combined["summary"] = tune_summary(combined["propensities"], combined["neutral"], combined["answers"],
                                       n_boot=config.n_boot, seed=config.seed)
    for name, frame in combined.items():
        if len(frame.columns):
            write_table_atomic(frame, out_dir / f"{name}.{fmt}")
    rec = recommend(combined["summary"], config.kl_budget)
    write_text_atomic(json.dumps(rec, indent=2), out_dir / "recommendation.json")
    return combined


def run_tune_job(config: TuneConfig, out_dir: str | Path, *, model=None, executor=None, data=None,
                 data_dir: str | None = None, progress: bool = True) -> RunReport:
    """Run the tune scan through the runner; the report's ``tables`` are ``{"propensities", "neutral", "answers",
    "summary"}`` (and ``recommendation.json`` is written). Failed units are in ``report.failed``."""
    return run_job(TuneJob(config, data=data, data_dir=data_dir), out_dir, executor=executor, model=model,
                   progress=progress)


# ----------------------------------------------------------------------------- the run and its post-run phase
@dataclass
class TuneResult:
    """Everything a tune run produced (the same tables are in ``out_dir``)."""

    out_dir: Path
    report: RunReport
    summary: pd.DataFrame
    recommendation: dict
    baseline: pd.DataFrame | None = None
    generations: pd.DataFrame | None = None
    capability: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def propensities(self) -> pd.DataFrame:
        """The propensity table (of a finished run, or of a rebuilt one)."""
        return self.report.tables["propensities"]


def run_tune(config: TuneConfig, out_dir: str | Path, *, model=None, executor=None, data=None, data_dir=None,
             n_generations: int = 4, max_new_tokens: int = 32, capability_n: int = 0, progress: bool = True) -> TuneResult:
    """Run the tune job into ``out_dir``, then the post-run phase (:mod:`interp_steer.runs.post_run`) at the
    recommended setting (or, when none qualifies, at the largest-shift setting, said so in the report):

    * the prompting baseline (:func:`~interp_steer.evaluation.baseline.prompting_baseline`, SYS_POS / SYS_NEG);
    * steered generations side by side (multipliers 0 and ±m) with repetition, distinct-n, unsteered perplexity;
    * optionally capability under steering: accuracy on letter-balanced ``caa-test:mmlu`` / ``caa-test:truthfulqa``.

    Writes ``summary``, ``baseline``, ``generations`` (and ``capability``) tables, ``tune_pareto.png``, ``report.md``
    and ``steering_card.html`` (:mod:`interp_steer.report.tune`) beside the unit files, ``config.json`` and
    ``recommendation.json``. ``model``: an already loaded model (default: ``load_model(config.model)``)."""
    from interp_steer.models import load_model
    from interp_steer.report.tune import save_tune_pareto, tune_report_markdown

    out_dir = Path(out_dir)
    if model is None and executor is None:
        model = load_model(config.model, device=config.device)
    report = run_tune_job(config, out_dir, model=model, executor=executor, data=data,
                          data_dir=None if data_dir is None else str(data_dir), progress=progress)
    report.raise_if_failed()
    summary = report.tables["summary"]
    result = TuneResult(out_dir, report, summary, recommend(summary, config.kl_budget))
    if model is None:
        model = load_model(config.model, device=config.device)
    job = TuneJob(config, data=data, data_dir=None if data_dir is None else str(data_dir))
    setting = chosen_setting(summary, result.recommendation)
    if setting is not None:
        _at_setting(result, config, job, model, setting, n_generations=n_generations, max_new_tokens=max_new_tokens,
                    capability_n=capability_n, data_dir=data_dir)
    else:
        result.notes.append("No positive multiplier in the scan; nothing to compare with the prompting baseline.")
    save_tune_pareto(config, result)
    write_text_atomic(tune_report_markdown(config, result), out_dir / "report.md")
    write_run_card(config, result, model, setting, job)
    write_text_atomic(json.dumps(result.recommendation, indent=2), out_dir / "recommendation.json")
    return result


def _at_setting(result: TuneResult, config: TuneConfig, job: TuneJob, model, setting: tuple[int, float], *,
                n_generations: int, max_new_tokens: int, capability_n: int, data_dir) -> None:
    """The baseline, generations and capability of a tune run at ``setting`` (into ``result`` and ``out_dir``)."""
    from interp_steer.evaluation.capability import capability_table
    from interp_steer.runs.post_run import generation_prompts, persona_baseline, steered_generations

    layer, m = setting
    out_dir, fmt, summary = result.out_dir, config.table_format, result.summary
    if not result.recommendation.get("found"):
        result.notes.append(fallback_note(result.recommendation, layer, m))
    vector = SteeringVector.load(out_dir / f"units/L{layer:03d}.vector.safetensors")
    row = summary[(summary.layer == layer) & (summary.multiplier == m)].iloc[0]
    train, test = job.pairs()
    messages = [p.prompt for p in generation_prompts(test, n_generations)]
    result.baseline = persona_baseline(
        model, config.dataset, train, test, vector, m, notes=result.notes, neutral=job.neutral(model),
        generation_messages=messages, max_new_tokens=max_new_tokens, units=config.units,
        raw_multiplier=float(row.get("raw_multiplier", m)), batch_size=config.batch_size, n_boot=config.n_boot,
        seed=config.seed)
    if result.baseline is not None:
        write_table_atomic(result.baseline, out_dir / f"baseline.{fmt}")
    result.generations = steered_generations(model, test, vector, layer, m, n=n_generations,
                                             max_new_tokens=max_new_tokens, batch_size=config.batch_size)
    if result.generations is not None:
        write_table_atomic(result.generations, out_dir / f"generations.{fmt}")
    if capability_n:
        result.capability = capability_table(model, vector, [0.0, m], n=capability_n, data_dir=data_dir,
                                             batch_size=config.batch_size, n_boot=config.n_boot, seed=config.seed)
        result.capability.insert(1, "layer", layer)
        result.capability["units"] = config.units
        write_table_atomic(result.capability, out_dir / f"capability.{fmt}")


def write_run_card(config: TuneConfig, result: TuneResult, model, setting: tuple[int, float] | None,
                job: TuneJob) -> Path:
    """The run's ``steering_card.html`` (:func:`~interp_steer.report.tune.write_tune_card`), with the projection view
    of the first held-out prompt at ``setting`` (the only step that runs the model)."""
    from interp_steer.report.tune import write_tune_card
    from interp_steer.runs.post_run import projection_or_note

    projection, card_notes = None, list[str]()
    if setting is not None:
        vector = SteeringVector.load(result.out_dir / f"units/L{setting[0]:03d}.vector.safetensors")
        projection = projection_or_note(model, vector, job.pairs()[1][0], [setting[0]], setting[1], card_notes)
    return write_tune_card(config, result, setting, projection, card_notes)


def rebuild_tune_card(out_dir: str | Path, model=None) -> Path:
    """Rewrite ``steering_card.html`` of a finished tune run from its tables, ``config.json`` and
    ``recommendation.json`` (nothing recomputed; ``model``, default ``load_model(config.model)``, only draws the
    projection view of one prompt)."""
    out_dir = Path(out_dir)
    config = TuneConfig.from_json((out_dir / "config.json").read_text())
    fmt = config.table_format

    def table(name: str) -> pd.DataFrame | None:
        path = out_dir / f"{name}.{fmt}"
        return read_table(path) if path.exists() else None

    summary, props = table("summary"), table("propensities")
    if summary is None or props is None:
        raise InterpSteerError(f"{out_dir}: no summary / propensities table; is this a finished tune run?")
    rec = json.loads((out_dir / "recommendation.json").read_text())
    report = RunReport(out_dir, total=0, tables={"propensities": props})
    result = TuneResult(out_dir, report, summary, rec, table("baseline"), table("generations"), table("capability"))
    setting = chosen_setting(summary, rec)
    if setting is not None and not rec.get("found"):
        result.notes.append(fallback_note(rec, *setting))
    if model is None:
        from interp_steer.models import load_model

        model = load_model(config.model, device=config.device)
    return write_run_card(config, result, model, setting, TuneJob(config))


def fallback_note(rec: dict, layer: int, multiplier: float) -> str:
    """The note shown when nothing is recommended (the reason is the recommendation's own ``reason``): which setting
    the baseline and generations use instead."""
    return (f"Nothing is recommended ({rec.get('reason') or 'no setting qualifies'}); the baseline and generations "
            f"below use the largest-shift setting (layer {layer}, multiplier {multiplier:g}).")
