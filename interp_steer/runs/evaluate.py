"""``evaluate`` as a runner job: one steering vector on one dataset, with its side effects and capability cost.

Units (each resumable: its last file marks it done)::

    vector          units/vector.steered.safetensors (the vector as steered: rescaled for --units norm),
                    units/vector.answers.<fmt> (A/B: format mass per (sample, multiplier); no rows for free text),
                    units/vector.propensity.<fmt>
    random-000 …    units/random-000.propensity.<fmt>   norm-matched random vectors (``random_baselines``)
    neutral         units/neutral.<fmt>      KL / ΔNLL per (neutral passage, multiplier)   (``neutral_n`` > 0)
    capability-mmlu units/capability-mmlu.<fmt>   per-item answer scores on the letter-balanced capability set,
    …                                             one unit per ``capability`` name (mmlu, truthfulqa)
    generations     units/generations.<fmt>  greedy generations of ``n_generations`` evaluated prompts at every
                    multiplier with repetition / distinct-n / unsteered perplexity   (``n_generations`` > 0)

For A/B data the propensities and the format mass come from **one** pass: the vector unit scores every
(sample, multiplier) with :func:`~interp_steer.evaluation.side_effects.answer_scores` (full next-token
log-softmax at the answer position) and builds the propensity table from the same letter log-probabilities
(``logit_diff = log p(pos) − log p(neg)``). Free-text data use :func:`compute_propensities`.

Multipliers are in ``units`` (``raw`` or ``norm``, :mod:`interp_steer.evaluation.units`; the norm reference is
the layer's mean residual norm over the first ``neutral_n`` neutral passages, or
:data:`REFERENCE_PASSAGES` when ``neutral_n`` is 0); every table carries the unit columns.

The combined tables (:func:`combine_evaluation`)::

    out/propensities, per_sample, summary[, spurious]    as ``interp-steer evaluate`` always wrote
    out/steerability_ci     mean slope and anti-steerable fraction of the vector with bootstrap 95% intervals
    out/side_effects        per multiplier: shift, KL, ΔNLL, format mass with 95% intervals (needs multiplier 0)
    out/capability, out/generations, out/answers, out/neutral          when those units ran

:func:`run_evaluate` runs the job and then, at the recommended multiplier (the largest positive shift whose KL
upper 95% limit is within ``kl_budget``, :func:`~interp_steer.evaluation.settings.recommend`), the post-run phase
shared with ``tune`` (:mod:`interp_steer.runs.post_run`): the prompting baseline (kept as
``units/baseline.m<m>.<fmt>``, reused on resume), then the plots and ``steering_card.html``
(:mod:`interp_steer.report.evaluate`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from interp_steer.errors import ConfigError
from interp_steer.evaluation.engines import scored_propensities
from interp_steer.evaluation.side_effects import NeutralSet
from interp_steer.evaluation.units import ScaledVector
from interp_steer.runs.analysis_configs import CAPABILITY_SPECS, EvaluateConfig, parse_capability  # noqa: F401
from interp_steer.runs.evaluate_units import EvaluateUnit, combine_evaluation, evaluate_unit_files, evaluate_units
from interp_steer.runs.files import read_table, write_table_atomic, write_text_atomic
from interp_steer.runs.records import intact_or_warn
from interp_steer.runs.runner import Job, RunReport, UnitFiles, run_job
from interp_steer.steering.vector import SteeringVector

REFERENCE_PASSAGES = 64
"""Neutral passages the norm-units reference is measured on when no neutral side effects are computed."""


class EvaluateJob(Job):
    """``vector`` (already restricted to one hook) on ``config.dataset``; pairs are loaded where units run
    (``pairs``: evaluate these instead, e.g. pairs built in code; ``config.dataset`` then only labels them)."""

    config: EvaluateConfig

    def __init__(self, config: EvaluateConfig, vector: SteeringVector, data_dir: str | Path | None = None,
                 pairs: Sequence | None = None) -> None:
        self.config, self.vector = config, vector
        self.data_dir = None if data_dir is None else str(data_dir)
        self._pairs = None if pairs is None else list(pairs)
        self._neutral: NeutralSet | None = None
        self._scaled: ScaledVector | None = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_neutral"] = state["_scaled"] = None  # recomputed by each worker
        return state

    def units(self) -> list[EvaluateUnit]:
        return evaluate_units(self.config)

    def unit_files(self, unit: EvaluateUnit) -> list[str]:
        return evaluate_unit_files(self.config, unit)

    def pairs(self):
        """The evaluated pairs: the test part of the seeded split (or all pairs), first ``n``."""
        if self._pairs is None:
            from interp_steer.data import DataSplit, load_dataset

            cfg = self.config
            pairs = load_dataset(cfg.dataset, data_dir=self.data_dir, framing=cfg.framing)
            if cfg.split == "test":
                pairs = DataSplit(cfg.test_fraction, cfg.seed).test(pairs)
            self._pairs = pairs[: cfg.n]
        return self._pairs

    def neutral(self, model, continuations: bool = True):
        """The neutral set: ``neutral_n`` passages with their greedy unsteered continuations (cached)."""
        from interp_steer.evaluation.side_effects import prepare_neutral

        cfg = self.config
        if not continuations:
            return prepare_neutral(model, n=cfg.neutral_n or REFERENCE_PASSAGES, continuation_tokens=0)
        if self._neutral is None:
            self._neutral = prepare_neutral(model, n=cfg.neutral_n or REFERENCE_PASSAGES,
                                            continuation_tokens=cfg.continuation_tokens, batch_size=cfg.batch_size)
        return self._neutral

    def scaled(self, model) -> ScaledVector:
        """The vector in the config's units (for ``norm``: the reference residual norm measured on ``model``)."""
        if self._scaled is None:
            from interp_steer.evaluation.units import in_units, mean_residual_norm

            vector = self.vector.select()
            hook = vector.hook_names[0]
            reference = None
            if self.config.units == "norm":
                tokens = list(self.neutral(model, continuations=False).tokens)
                reference = mean_residual_norm(model, [hook], tokens)[hook]
            self._scaled = in_units(vector, self.config.units, reference)
        return self._scaled

    def compute(self, unit: EvaluateUnit, model) -> UnitFiles:
        from interp_steer.evaluation import random_like
        from interp_steer.evaluation.units import with_units

        cfg = self.config
        self.vector.check_fits(model)
        scaled = self.scaled(model)
        steered = scaled.vector.to(model.cfg.device, dtype=model.cfg.dtype)
        files = self.unit_files(unit)
        if unit.kind == "vector":
            vector = steered if unit.seed is None else random_like(steered, unit.seed)
            name = cfg.vector_name if unit.seed is None else f"random:{unit.seed}"
            props, answers = scored_propensities(model, self.pairs(), vector, cfg.multipliers, device=cfg.device,
                                                 batch_size=cfg.batch_size, vector_name=name)
            props = with_units(props, scaled)
            if unit.seed is not None:
                return [(files[0], props)]
            answers.insert(0, "layer", int(props["layer"].iloc[0]))
            return [(files[0], scaled.vector), (files[1], with_units(answers, scaled)), (files[2], props)]
        layer = _layer(steered)
        if unit.kind == "neutral":
            from interp_steer.evaluation.side_effects import neutral_side_effects

            table = neutral_side_effects(model, self.neutral(model), steered, cfg.multipliers, batch_size=cfg.batch_size)
        elif unit.kind == "capability":
            from interp_steer.data.capability_sets import letter_balanced
            from interp_steer.data.registry import load_dataset
            from interp_steer.evaluation.side_effects import answer_scores

            items = letter_balanced(load_dataset(CAPABILITY_SPECS[unit.name], data_dir=self.data_dir), cfg.capability_n)
            table = answer_scores(model, items, steered, cfg.multipliers, batch_size=cfg.batch_size)
        else:
            table = self.generations(model, steered)
        table.insert(0, "layer", layer)
        return [(files[0], with_units(table, scaled))]

    def generation_pairs(self):
        """The first ``n_generations`` evaluated pairs with distinct prompts."""
        return list({p.prompt: p for p in self.pairs()}.values())[: self.config.n_generations]

    def generations(self, model, steered: SteeringVector) -> pd.DataFrame:
        from interp_steer.data.templates import render_prompt
        from interp_steer.evaluation.side_effects import generation_side_effects

        cfg = self.config
        chosen = self.generation_pairs()
        prompts = [render_prompt(model.tokenizer, p) for p in chosen]
        table = generation_side_effects(model, prompts, steered, cfg.multipliers, max_new_tokens=cfg.max_new_tokens,
                                        batch_size=cfg.batch_size)
        table["user_prompt"] = [chosen[i].prompt for i in table["prompt_index"]]
        return table

    def combine(self, out_dir: Path) -> dict[str, pd.DataFrame]:
        return combine_evaluation(out_dir, self.config)


def _layer(vector: SteeringVector) -> int:
    from interp_steer.steering.hook_names import layer_of

    return layer_of(vector.select().hook_names[0])


# ----------------------------------------------------------------------------- report
@dataclass
class EvaluateResult:
    """What :func:`run_evaluate` produced (the same tables are in ``out_dir``)."""

    out_dir: Path
    report: RunReport
    tables: dict[str, pd.DataFrame]
    recommendation: dict
    baseline: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


def run_evaluate(config: EvaluateConfig, vector: SteeringVector, out_dir: str | Path, *, model=None,
                 data_dir: str | Path | None = None, pairs: Sequence | None = None,
                 progress: bool = True) -> EvaluateResult:
    """Run the evaluate job into ``out_dir`` (resumable), then the recommendation, the prompting baseline (when
    ``config.baseline``), the plots and ``steering_card.html``. ``model``: an already loaded model (default
    ``load_model(config.model)``); ``pairs``: see :class:`EvaluateJob`."""
    from interp_steer.runs.post_run import recommendation

    out_dir = Path(out_dir)
    if model is None:
        from interp_steer.models import load_model

        model = load_model(config.model, device=config.device)
    job = EvaluateJob(config, vector, data_dir, pairs)
    from interp_steer.evaluation.propensity import scoring_rows

    scoring_rows(model.tokenizer, job.pairs(), n_ctx=model.cfg.n_ctx)  # over-long pairs fail before any unit runs
    report = run_job(job, out_dir, model=model, progress=progress)
    report.raise_if_failed()
    tables = report.tables
    rec = recommendation(tables.get("side_effects"), config.kl_budget, config.units, has_neutral="neutral" in tables)
    result = EvaluateResult(out_dir, report, tables, rec)
    m = _chosen_multiplier(result)
    steered = SteeringVector.load(out_dir / "units/vector.steered.safetensors")
    if config.baseline:
        if m is None:
            result.notes.append("No prompting baseline: no positive multiplier was evaluated.")
        else:
            result.baseline = _baseline(job, model, steered, m, result)
    write_text_atomic(json.dumps(rec, indent=2), out_dir / "recommendation.json")
    _write_card(config, result, model, steered, m, job)
    return result


def _chosen_multiplier(result: EvaluateResult) -> float | None:
    """The recommended multiplier, else the largest-shift positive one (with a note saying it is not recommended)."""
    from interp_steer.evaluation.settings import chosen_setting

    setting = chosen_setting(result.tables.get("side_effects"), result.recommendation)
    if setting is not None and not result.recommendation.get("found"):
        result.notes.append(f"No multiplier is within the KL budget; the baseline and projection use the "
                            f"largest-shift multiplier {setting[1]:g}, which is not recommended.")
    return None if setting is None else float(setting[1])


def _write_card(config: EvaluateConfig, result: EvaluateResult, model, steered: SteeringVector,
                multiplier: float | None, job: EvaluateJob) -> Path:
    """The plots and steering card (:func:`~interp_steer.report.evaluate.write_evaluate_card`), with the projection
    view of the first evaluated prompt at ``multiplier`` (the only step that runs the model)."""
    from interp_steer.report.evaluate import write_evaluate_card
    from interp_steer.runs.post_run import projection_or_note

    card_notes: list[str] = []
    projection = None if multiplier is None else projection_or_note(model, steered, job.pairs()[0], [_layer(steered)],
                                                                     multiplier, card_notes)
    return write_evaluate_card(config, result, projection, card_notes)


def _baseline(job: EvaluateJob, model, steered: SteeringVector, m: float, result: EvaluateResult) -> pd.DataFrame | None:
    """The prompting baseline at multiplier ``m``: a resumable file ``units/baseline.m<m>.<fmt>``."""
    from interp_steer.data import DataSplit, load_dataset
    from interp_steer.runs.post_run import persona_baseline

    cfg = job.config
    path = result.out_dir / f"units/baseline.m{m:g}.{cfg.table_format}"
    if path.exists() and intact_or_warn(path):
        table = read_table(path)
    else:
        train = None
        if not cfg.dataset.startswith("builtin:"):
            pairs = load_dataset(cfg.dataset, data_dir=job.data_dir, framing=cfg.framing)
            train = DataSplit(cfg.test_fraction, cfg.seed).train(pairs) if cfg.split == "test" else pairs
        props = result.tables["propensities"]
        raw_m = float(props.loc[props.multiplier == m, "raw_multiplier"].iloc[0])
        messages = [p.prompt for p in job.generation_pairs()] if cfg.n_generations else []
        table = persona_baseline(model, cfg.dataset, train, job.pairs(), steered, m, notes=result.notes,
                                 neutral=job.neutral(model) if cfg.neutral_n else None,
                                 generation_messages=messages, max_new_tokens=cfg.max_new_tokens, units=cfg.units,
                                 raw_multiplier=raw_m, batch_size=cfg.batch_size, n_boot=cfg.n_boot, seed=cfg.seed)
        if table is None:
            return None
        write_table_atomic(table, path)
    write_table_atomic(table, result.out_dir / f"baseline.{cfg.table_format}")
    return table


def rebuild_evaluate_card(out_dir: str | Path, model=None) -> Path:
    """Rewrite the plots and ``steering_card.html`` of a finished evaluate run from its tables, ``config.json`` and
    ``recommendation.json`` (no propensity, side-effect or baseline recomputed; ``model``, default
    ``load_model(config.model)``, only draws the projection view of one prompt)."""
    from interp_steer.runs.files import read_table

    out_dir = Path(out_dir)
    config = EvaluateConfig.from_json((out_dir / "config.json").read_text())
    tables = {p.stem: read_table(p) for p in sorted(out_dir.glob(f"*.{config.table_format}"))}
    baseline = tables.pop("baseline", None)
    if "propensities" not in tables or "per_sample" not in tables:
        raise ConfigError(f"{out_dir}: no propensities / per_sample table; is this a finished evaluate run?")
    rec = json.loads((out_dir / "recommendation.json").read_text())
    result = EvaluateResult(out_dir, RunReport(out_dir, total=0, tables=tables), tables, rec, baseline)
    m = _chosen_multiplier(result)
    if model is None:
        from interp_steer.models import load_model

        model = load_model(config.model, device=config.device)
    steered = SteeringVector.load(out_dir / "units/vector.steered.safetensors")
    job = EvaluateJob(config, SteeringVector.load(config.vector))
    return _write_card(config, result, model, steered, m, job)
