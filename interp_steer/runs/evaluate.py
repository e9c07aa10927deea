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
upper 95% limit is within ``kl_budget``, :func:`~interp_steer.runs.tune.recommend`), the prompting baseline
(kept as ``units/baseline.m<m>.<fmt>``, reused on resume), the plots and ``steering_card.html``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np
import pandas as pd

from interp_steer.errors import ConfigError, DataFormatError, InterpSteerError
from interp_steer.evaluation.side_effects import NeutralSet
from interp_steer.evaluation.units import UNIT_COLUMNS, ScaledVector, check_units
from interp_steer.runs.config import JobConfig
from interp_steer.runs.files import read_table, write_table_atomic, write_text_atomic
from interp_steer.runs.records import intact_or_warn
from interp_steer.runs.runner import Job, RunReport, UnitFiles, run_job
from interp_steer.steering.vector import SteeringVector

CAPABILITY_SPECS = {"mmlu": "caa-test:mmlu", "truthfulqa": "caa-test:truthfulqa"}
"""``--capability`` names and the letter-balanced A/B sets they score."""
REFERENCE_PASSAGES = 64
"""Neutral passages the norm-units reference is measured on when no neutral side effects are computed."""
ANSWER_COLUMNS = ["sample_id", "dataset", "multiplier", "is_A", "logit_diff", "correct", "pos_prob", "format_mass"]


def parse_capability(text: str | Sequence[str] | None) -> list[str]:
    """``"mmlu,truthfulqa"`` (or a list) → the names, checked; ``""`` / ``None`` → ``[]``. One-line ConfigError
    naming ``--capability`` for an unknown or repeated name."""
    if text is None:
        return []
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    items = [s for s in items if s]
    bad = [s for s in items if s not in CAPABILITY_SPECS]
    if bad:
        raise ConfigError(f"--capability {bad[0]!r}: use a comma-separated subset of {', '.join(CAPABILITY_SPECS)}")
    if len(set(items)) != len(items):
        raise ConfigError(f"--capability {','.join(items)!r}: a name is repeated")
    return items


def check_kl_budget(value: float) -> None:
    """One-line ConfigError naming ``--kl-budget`` unless it is a positive finite number."""
    if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
        raise ConfigError(f"--kl-budget must be a positive number (nats per token), got {value}")


@dataclass
class EvaluateConfig(JobConfig):
    """What ``evaluate`` computes; saved as ``config.json``. ``vector_sha1`` identifies the vector file's contents
    (so a directory is not resumed with a changed vector under the same name); ``random_baselines`` and
    ``capability`` may grow between a run and its resume (the new units are added).

    Side effects: ``neutral_n`` neutral passages (0: none) with greedy unsteered continuations of
    ``continuation_tokens`` tokens; ``capability`` names (:data:`CAPABILITY_SPECS`) with ``capability_n``
    letter-balanced items each; ``n_generations`` prompts of ``max_new_tokens`` tokens; ``baseline``: the
    SYS± prompting baseline at the recommended multiplier (within ``kl_budget``). Shift, KL and the baseline are
    relative to the unsteered model, so they need multiplier 0 among ``multipliers``.
    """

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = (
        "vector_sha1", "layer", "dataset", "model", "multipliers", "split", "test_fraction", "seed", "n", "framing",
        "table_format", "units", "neutral_n", "continuation_tokens", "capability_n", "n_generations",
        "max_new_tokens",
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
    units: str = "raw"
    neutral_n: int = 0
    continuation_tokens: int = 16
    capability: list[str] = field(default_factory=list)
    capability_n: int = 100
    n_generations: int = 0
    max_new_tokens: int = 32
    baseline: bool = False
    kl_budget: float = 0.1
    n_boot: int = 2000

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
        check_units(self.units)
        check_kl_budget(self.kl_budget)
        self.capability = parse_capability(self.capability)
        for name, minimum in (("neutral_n", 0), ("continuation_tokens", 0), ("capability_n", 2),
                              ("n_generations", 0), ("max_new_tokens", 1), ("n_boot", 100)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"--{name.replace('_', '-')} must be an integer ≥ {minimum}, got {value!r}")
        if (self.neutral_n or self.baseline) and 0.0 not in self.multipliers:
            raise ConfigError(f"--multipliers {self.multipliers} must include 0 (the unsteered reference of the shift, "
                              "KL and baseline); or pass --neutral-n 0 --no-baseline")
        self.vector_name = self.vector_name or Path(self.vector).stem


@dataclass(frozen=True)
class EvaluateUnit:
    """The evaluated vector (``kind="vector"``), the norm-matched random vector of one seed (``"random"``), the
    neutral-corpus side effects (``"neutral"``), one capability set (``"capability"``, ``name`` mmlu /
    truthfulqa) or the generations (``"generations"``)."""

    seed: int | None = None
    kind: str = "vector"
    name: str = ""

    @property
    def key(self) -> str:
        if self.kind == "vector" and self.seed is not None:
            return f"random-{self.seed:03d}"
        if self.kind == "capability":
            return f"capability-{self.name}"
        return self.kind


def _empty_answers() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in ANSWER_COLUMNS})


def scored_propensities(model, pairs, vector: SteeringVector, multipliers: Sequence[float], *, batch_size: int,
                        vector_name: str, device=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(propensities, answers)`` of ``vector`` on ``pairs``. All-A/B pairs: one
    :func:`~interp_steer.evaluation.side_effects.answer_scores` pass gives the answer-format mass and the
    propensity table (built by :func:`~interp_steer.evaluation.propensity.propensity_frame` from the same letter
    log-probabilities). Otherwise :func:`compute_propensities` and an empty answers table."""
    from interp_steer.evaluation.propensity import compute_propensities, propensity_frame
    from interp_steer.evaluation.side_effects import answer_scores
    from interp_steer.scoring import LetterScore

    if not all(p.kind == "ab" for p in pairs):
        props = compute_propensities(model, pairs, vector, multipliers, batch_size=batch_size, device=device,
                                     progress=False, vector_name=vector_name)
        return props, _empty_answers()
    # compute_propensities' input checks (ids unique, finite multipliers), on zero-cost inputs
    ids = [p.id or str(i) for i, p in enumerate(pairs)]
    if len(set(ids)) != len(ids):
        raise DataFormatError("pair ids must be unique within a work unit")
    answers = answer_scores(model, pairs, vector, [float(m) for m in multipliers], batch_size=batch_size)
    index = {sid: i for i, sid in enumerate(ids)}
    scores = {(index[r.sample_id], "ab", float(r.multiplier)): LetterScore(r.logit_diff, r.logit_diff, r.pos_prob)
              for r in answers.itertuples()}
    props = propensity_frame(pairs, vector.select(), [float(m) for m in multipliers], scores, vector_name)
    return props, answers


def evaluate_units(config: EvaluateConfig) -> list[EvaluateUnit]:
    """Every unit of an evaluate run, in report order."""
    units = [EvaluateUnit(None), *(EvaluateUnit(s) for s in range(config.random_baselines))]
    if config.neutral_n:
        units.append(EvaluateUnit(kind="neutral"))
    units += [EvaluateUnit(kind="capability", name=name) for name in config.capability]
    if config.n_generations:
        units.append(EvaluateUnit(kind="generations"))
    return units


def evaluate_unit_files(config: EvaluateConfig, unit: EvaluateUnit) -> list[str]:
    """A unit's files relative to the output directory (the last one marks it done)."""
    fmt = config.table_format
    if unit.kind == "vector" and unit.seed is None:
        return ["units/vector.steered.safetensors", f"units/vector.answers.{fmt}", f"units/vector.propensity.{fmt}"]
    if unit.kind == "vector":
        return [f"units/{unit.key}.propensity.{fmt}"]
    return [f"units/{unit.key}.{fmt}"]


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


def _with_unit_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Tables written before multiplier units existed are raw."""
    if "units" in frame.columns or "multiplier" not in frame.columns:
        return frame
    return frame.assign(units="raw", reference_norm=np.nan, vector_norm=np.nan, raw_multiplier=frame["multiplier"])


def _read_units(out_dir: Path, config: EvaluateConfig, kind: str) -> pd.DataFrame | None:
    done = [out_dir / evaluate_unit_files(config, u)[-1] for u in evaluate_units(config) if u.kind == kind]
    frames = [read_table(p) for p in done if p.exists()]
    frames = [f for f in frames if len(f.columns)]
    return pd.concat(frames, ignore_index=True) if frames else None


def capability_summary(scores: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per (capability set, multiplier): ``accuracy`` and ``format_mass`` with bootstrap 95% intervals over items
    (as :func:`~interp_steer.evaluation.capability.capability_table`), plus the unit columns."""
    from interp_steer.evaluation.side_effects import summarize

    frame = scores.assign(accuracy=scores["correct"].astype(float))
    by = ["dataset", "layer", "multiplier", *[c for c in UNIT_COLUMNS if c in frame.columns]]
    return summarize(frame, ["accuracy", "format_mass"], by, n_boot=n_boot, seed=seed)


def steerability_intervals(per_sample: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per vector: mean per-sample slope and anti-steerable fraction (share of slopes < 0), each with a
    percentile-bootstrap 95% interval over samples."""
    from interp_steer.evaluation.side_effects import summarize

    frame = per_sample.assign(anti_steerable_fraction=(per_sample["slope"] < 0).astype(float))
    by = [c for c in ("dataset", "layer", "vector") if c in frame.columns]
    return summarize(frame, ["slope", "anti_steerable_fraction"], by, n_boot=n_boot, seed=seed).rename(
        columns={"slope": "mean_slope", "slope_lo": "mean_slope_lo", "slope_hi": "mean_slope_hi", "n_items": "n_samples"})


def combine_evaluation(out_dir: str | Path, config: EvaluateConfig) -> dict[str, pd.DataFrame]:
    """The finished units' tables (see the module docstring), written into ``out_dir``; ``{}`` while no
    propensity unit is finished."""
    from interp_steer.evaluation import spurious_factor_variance, steerability, summarize_steerability
    from interp_steer.runs.tune import tune_summary

    out_dir = Path(out_dir)
    props = _read_units(out_dir, config, "vector")
    if props is None:  # only side-effect units finished: nothing to combine yet (the failed units say why)
        return {}
    props = _with_unit_columns(props)
    per_sample = steerability(props.drop(columns=[c for c in UNIT_COLUMNS if c in props.columns]))
    tables = {"propensities": props, "per_sample": per_sample, "summary": summarize_steerability(per_sample)}
    own = per_sample[per_sample["vector"] == config.vector_name]
    if len(own) and own["is_A"].notna().any():
        tables["spurious"] = spurious_factor_variance(own)
    if len(own):
        tables["steerability_ci"] = steerability_intervals(own, n_boot=config.n_boot, seed=config.seed)
    answers_path = out_dir / f"units/vector.answers.{config.table_format}"
    answers = read_table(answers_path) if answers_path.exists() else None
    if answers is not None and len(answers):
        tables["answers"] = answers
    neutral = _read_units(out_dir, config, "neutral")
    if neutral is not None:
        tables["neutral"] = neutral
    own_props = props[props["vector"] == config.vector_name]
    if len(own_props) and 0.0 in set(own_props["multiplier"]):
        tables["side_effects"] = tune_summary(
            own_props, neutral if neutral is not None else pd.DataFrame(columns=["layer", "multiplier", "kl", "dnll"]),
            tables.get("answers"), n_boot=config.n_boot, seed=config.seed)
    capability = _read_units(out_dir, config, "capability")
    if capability is not None:
        tables["capability_items"] = capability
        tables["capability"] = capability_summary(capability, n_boot=config.n_boot, seed=config.seed)
    generations = _read_units(out_dir, config, "generations")
    if generations is not None:
        tables["generations"] = generations
    for name, frame in tables.items():
        if "units" not in frame.columns:  # slopes are per unit of multiplier: every table says which unit
            tables[name] = frame = frame.assign(units=config.units)
        write_table_atomic(frame, out_dir / f"{name}.{config.table_format}")
    return tables


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


def chosen_multiplier(side_effects: pd.DataFrame | None, recommendation: dict) -> float | None:
    """The recommended multiplier, else (said in the card) the positive multiplier with the largest shift."""
    if recommendation.get("found"):
        return float(recommendation["multiplier"])
    if side_effects is None:
        return None
    positive = side_effects[side_effects.multiplier > 0]
    return None if positive.empty else float(positive.loc[positive["shift"].idxmax(), "multiplier"])


def run_evaluate(config: EvaluateConfig, vector: SteeringVector, out_dir: str | Path, *, model=None,
                 data_dir: str | Path | None = None, pairs: Sequence | None = None,
                 progress: bool = True) -> EvaluateResult:
    """Run the evaluate job into ``out_dir`` (resumable), then the recommendation, the prompting baseline (when
    ``config.baseline``), the plots and ``steering_card.html``. ``model``: an already loaded model (default
    ``load_model(config.model)``); ``pairs``: see :class:`EvaluateJob`."""
    from interp_steer.runs.tune import recommend

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
    side = tables.get("side_effects")
    if side is not None and "neutral" in tables:
        rec = recommend(side, config.kl_budget)
    else:
        rec = {"found": False, "kl_budget": config.kl_budget, "units": config.units,
               "reason": "no neutral side effects were computed (--neutral-n 0), so no setting can be checked "
                         "against the KL budget"}
    result = EvaluateResult(out_dir, report, tables, rec)
    m = chosen_multiplier(side, rec)
    if m is not None and not rec.get("found"):
        result.notes.append(f"No multiplier is within the KL budget; the baseline and projection use the "
                            f"largest-shift multiplier {m:g}, which is not recommended.")
    steered = SteeringVector.load(out_dir / "units/vector.steered.safetensors")
    if config.baseline:
        if m is None:
            result.notes.append("No prompting baseline: no positive multiplier was evaluated.")
        else:
            result.baseline = _baseline(job, model, steered, m, result)
    write_text_atomic(json.dumps(rec, indent=2), out_dir / "recommendation.json")
    write_evaluate_card(config, result, model, steered, m, job)
    return result


def _baseline(job: EvaluateJob, model, steered: SteeringVector, m: float, result: EvaluateResult) -> pd.DataFrame | None:
    """The prompting baseline at multiplier ``m``: a resumable file ``units/baseline.m<m>.<fmt>``."""
    from interp_steer.data import DataSplit, load_dataset
    from interp_steer.evaluation.baseline import baseline_sentences, prompting_baseline

    cfg = job.config
    path = result.out_dir / f"units/baseline.m{m:g}.{cfg.table_format}"
    if path.exists() and intact_or_warn(path):
        table = read_table(path)
    else:
        train = None
        if not cfg.dataset.startswith("builtin:"):
            pairs = load_dataset(cfg.dataset, data_dir=job.data_dir, framing=cfg.framing)
            train = DataSplit(cfg.test_fraction, cfg.seed).train(pairs) if cfg.split == "test" else pairs
        try:
            sentences = baseline_sentences(cfg.dataset, train)
        except InterpSteerError as exc:
            result.notes.append(f"No prompting baseline: {exc}")
            return None
        props = result.tables["propensities"]
        raw_m = float(props.loc[props.multiplier == m, "raw_multiplier"].iloc[0])
        messages = [p.prompt for p in job.generation_pairs()] if cfg.n_generations else []
        table = prompting_baseline(model, job.pairs(), steered, m, sentences=sentences,
                                   neutral=job.neutral(model) if cfg.neutral_n else None,
                                   generation_messages=messages, max_new_tokens=cfg.max_new_tokens, units=cfg.units,
                                   raw_multiplier=raw_m, batch_size=cfg.batch_size, n_boot=cfg.n_boot, seed=cfg.seed)
        write_table_atomic(table, path)
    write_table_atomic(table, result.out_dir / f"baseline.{cfg.table_format}")
    return table


def _png(fig) -> bytes:
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def write_evaluate_card(config: EvaluateConfig, result: EvaluateResult, model, steered: SteeringVector,
                        multiplier: float | None, job: EvaluateJob) -> Path:
    """The plots (``propensity_curves.png``, ``steerability_distribution.png``, ``spurious_variance.png`` for A/B)
    and the steering card ``steering_card.html`` of an evaluate run."""
    from interp_steer.viz.plots import plot_propensity_curves, plot_spurious_variance, plot_steerability_distribution
    from interp_steer.viz.steering_card import save_steering_card

    out_dir, tables, name = result.out_dir, result.tables, config.vector_name
    props = tables["propensities"]
    own = tables["per_sample"][tables["per_sample"]["vector"] == name]
    units = f" ({config.units} multipliers)"
    figures = [("propensity_curves", f"Propensity vs multiplier{units}, held-out samples",
                plot_propensity_curves(props[props["vector"] == name], title=f"{name} on {config.dataset}{units}")),
               ("steerability_distribution", "Per-sample steerability (slope of propensity on multiplier)",
                plot_steerability_distribution(own))]
    if "spurious" in tables:
        figures.append(("spurious_variance", "Spurious-factor variance of the slopes (A/B)",
                        plot_spurious_variance(tables["spurious"])))
    images = []
    for stem, caption, fig in figures:
        png = _png(fig)
        (out_dir / f"{stem}.png").write_bytes(png)
        images.append((caption, png))
    notes = list(result.notes)
    projection = None
    if multiplier is not None:
        try:
            from interp_steer.viz.views import projection_view

            projection = projection_view(model, steered, job.pairs()[0], [_layer(steered)], multiplier=multiplier)
        except (InterpSteerError, ImportError) as exc:
            notes.append(f"No projection view: {exc}")
    summary = tables.get("side_effects")
    if summary is None:  # no multiplier 0: the per-multiplier table is the mean propensity only
        own_props = props[props["vector"] == name]
        summary = own_props.groupby(["layer", "multiplier"], as_index=False).agg(
            n_samples=("propensity", "size"), mean_propensity=("propensity", "mean"))
    provenance = SteeringVector.load(config.vector).provenance.to_dict()
    provenance = {**provenance, "evaluated_file": config.vector, "sha1": config.vector_sha1, "units": config.units}
    path = out_dir / "steering_card.html"
    save_steering_card(path, f"Steering card: {name} on {config.dataset} ({config.model})", provenance=provenance,
                       recommendation=result.recommendation, summary=summary, images=images,
                       steerability=tables.get("steerability_ci"),
                       baseline=result.baseline, capability=tables.get("capability"),
                       generations=tables.get("generations"), projection=projection, notes=notes)
    return path


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
    m = chosen_multiplier(tables.get("side_effects"), rec)
    if m is not None and not rec.get("found"):
        result.notes.append(f"No multiplier is within the KL budget; the baseline and projection use the "
                            f"largest-shift multiplier {m:g}, which is not recommended.")
    if model is None:
        from interp_steer.models import load_model

        model = load_model(config.model, device=config.device)
    steered = SteeringVector.load(out_dir / "units/vector.steered.safetensors")
    job = EvaluateJob(config, SteeringVector.load(config.vector))
    return write_evaluate_card(config, result, model, steered, m, job)
