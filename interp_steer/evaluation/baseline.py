"""Does steering beat just asking? The persona-prompt baseline beside steering, with the same cost metrics.

For one behaviour data set (held-out pairs) and one steering setting (vector, multiplier ``m``):

* **steering** arms: the BASE prompts steered at ``+m`` (``pos``) and ``−m`` (``neg``);
* **prompting** arms: the unsteered model on the ``SYS_POS`` and ``SYS_NEG`` variants (the system prompt replaced
  by a persona sentence for / against the behaviour, :mod:`interp_steer.evaluation.variants`).

Each arm's ``shift`` is the mean over samples of its propensity minus the unsteered BASE propensity of the same
sample (paired); the ``contrast`` row of each method is ``pos − neg`` per sample. Every arm also gets the side-effect
metrics of :mod:`interp_steer.evaluation.side_effects`: neutral-corpus ``kl`` / ``dnll`` (for prompting: the persona
sentence put before each passage, compared with the bare passage), ``format_mass`` for A/B data, and, given user
messages, the generation metrics. Means carry percentile-bootstrap 95% intervals over samples / passages.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from transformer_lens import HookedTransformer

from interp_steer.data.pairs import BASE_SYSTEM_PROMPT, ContrastivePair
from interp_steer.data.tokenization import encode_text
from interp_steer.errors import ConfigError, DataFormatError
from interp_steer.evaluation.engines import PropensityEngine, resolve_engine
from interp_steer.evaluation.side_effects import (
    NeutralSet,
    answer_scores,
    generation_side_effects,
    neutral_side_effects,
)
from interp_steer.evaluation.variants import PersonaSentences, apply_variant, persona_sentences
from interp_steer.stats.intervals import mean_interval
from interp_steer.steering.generation import chat_prompt
from interp_steer.steering.hook_names import layer_of
from interp_steer.steering.vector import SteeringVector

BUILTIN_PERSONAS = {
    "builtin:sentiment": PersonaSentences(
        "You love everyday things and always talk about them warmly and enthusiastically.",
        "You dislike everyday things and always talk about them with irritation and disdain."),
    "builtin:formality": PersonaSentences(
        "You always reply in a formal, polite and professional register.",
        "You always reply casually, the way you would text a close friend."),
}
"""Persona sentences for the built-in sets (which have no persona statements to quote)."""

GENERATION_METRICS = ["repetition_rate", "distinct_1", "distinct_2", "unsteered_ppl"]
BASELINE_COLUMNS = [
    "dataset", "method", "arm", "setting", "layer", "multiplier", "units", "raw_multiplier", "n_samples",
    "mean_propensity", "mean_propensity_lo", "mean_propensity_hi", "shift", "shift_lo", "shift_hi",
    "kl", "kl_lo", "kl_hi", "dnll", "dnll_lo", "dnll_hi", "format_mass", "format_mass_lo", "format_mass_hi",
    *[f"{m}{s}" for m in GENERATION_METRICS for s in ("", "_lo", "_hi")],
]


def baseline_sentences(dataset: str, train_pairs: Sequence[ContrastivePair] | None = None) -> PersonaSentences:
    """Persona sentences for ``dataset``: the built-in ones for ``builtin:*`` sets, else derived from
    ``train_pairs`` (MWE persona statements, :func:`~interp_steer.evaluation.variants.persona_sentences`)."""
    base = dataset.partition("@")[0]
    if base in BUILTIN_PERSONAS:
        return BUILTIN_PERSONAS[base]
    if not train_pairs:
        raise DataFormatError(f"dataset {dataset!r}: no built-in persona sentences; pass train pairs with persona "
                              "statements or PersonaSentences explicitly")
    return persona_sentences(train_pairs)


def _ci(values, n_boot: int, seed: int) -> tuple[float, float, float]:
    return mean_interval(values, n_boot=n_boot, seed=seed)


def _reused_rows(table: pd.DataFrame, name: str, layer: int, multipliers: Sequence[float], key: str,
                 ids: Sequence[str], values: Sequence[str]) -> pd.DataFrame:
    """The rows of a caller's precomputed ``table`` at ``layer`` and ``multipliers``, checked to cover every id."""
    missing = [c for c in (key, "multiplier", *values) if c not in table.columns]
    if missing:
        raise ConfigError(f"prompting_baseline: {name} has no column(s) {', '.join(missing)}")
    rows = table
    if "layer" in rows.columns:
        rows = rows[rows["layer"] == layer]
    if "variant" in rows.columns:
        rows = rows[rows["variant"] == "BASE"]
    rows = rows[rows["multiplier"].isin([float(m) for m in multipliers])]
    want = set(ids)
    for mult in multipliers:
        have = set(rows.loc[rows["multiplier"] == float(mult), key])
        if not want <= have:
            raise ConfigError(f"prompting_baseline: {name} lacks {len(want - have)} of {len(want)} {key}s at "
                              f"multiplier {mult:g}, layer {layer} (e.g. {sorted(want - have)[0]!r})")
    return rows[rows[key].isin(want)].drop_duplicates([key, "multiplier"])


def prompting_baseline(
    model: HookedTransformer,
    pairs: Sequence[ContrastivePair],
    vector: SteeringVector,
    multiplier: float,
    *,
    sentences: PersonaSentences,
    neutral: NeutralSet | None = None,
    generation_messages: Sequence[str] = (),
    max_new_tokens: int = 32,
    units: str = "raw",
    raw_multiplier: float | None = None,
    engine: str | PropensityEngine = "batched",
    batch_size: int = 16,
    n_boot: int = 2000,
    seed: int = 0,
    steered: pd.DataFrame | None = None,
    steered_neutral: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One tidy table (columns :data:`BASELINE_COLUMNS`): steering at ``±multiplier`` vs the SYS_POS / SYS_NEG
    persona prompts on ``pairs`` (held-out, BASE rendering is applied here), with shifts and side effects.

    ``vector`` is the (single-hook) vector as steered, ``multiplier`` in ``units`` (recorded; ``raw_multiplier``
    is the factor on the original vector, default ``multiplier``). ``neutral``: the neutral set for ``kl`` /
    ``dnll`` (omitted: NaN). ``generation_messages``: user messages to generate from under each arm (omitted:
    no generation metrics). ``engine``: a registered engine name or an engine (:mod:`~interp_steer.evaluation.engines`).

    ``steered`` / ``steered_neutral`` reuse work already done by the caller (e.g. the demo's propensity and
    side-effect steps): propensity rows of ``pairs`` under the BASE prompt steered by ``vector`` at ``-m``, ``0``
    and ``+m`` (columns ``sample_id, multiplier, propensity``, filtered to the vector's layer where a ``layer``
    column exists), and :func:`neutral_side_effects` rows of ``neutral`` at ``±m``. Incomplete tables are a
    ``ConfigError`` naming what is missing.
    """
    if not pairs:
        raise ConfigError("prompting_baseline: no pairs")
    engine = resolve_engine(engine)
    if not np.isfinite(multiplier) or multiplier == 0:
        raise ConfigError(f"prompting_baseline: multiplier must be finite and non-zero, got {multiplier}")
    vector = vector.select()
    layer = layer_of(vector.hook_names[0])
    dataset = pairs[0].dataset
    base = apply_variant(pairs, "BASE")
    m = float(multiplier)
    steered_neutral = _reused_neutral(steered_neutral, neutral, layer, m)
    reference, arms = _reference_and_arms(model, engine, pairs, base, vector, m, sentences, steered, layer, units,
                                          batch_size)
    is_ab = all(p.kind == "ab" for p in pairs)
    raw = float(raw_multiplier) if raw_multiplier is not None else m
    records = []
    for (method, arm), (prop, setting) in arms.items():
        signed = m if arm == "pos" else -m
        steering = method == "steering"
        rec = {"dataset": dataset, "method": method, "arm": arm, "setting": setting, "layer": layer,
               "multiplier": signed if steering else 0.0, "units": units,
               "raw_multiplier": (raw if arm == "pos" else -raw) if steering else 0.0,
               "n_samples": int(prop.notna().sum())}
        for name, values in (("mean_propensity", prop), ("shift", prop - reference)):
            rec.update(zip((name, f"{name}_lo", f"{name}_hi"), _ci(values, n_boot, seed)))
        sentence = sentences.positive if arm == "pos" else sentences.negative
        if neutral is not None:
            side = _neutral_rows(model, neutral, vector if steering else None, signed, sentence, steered_neutral,
                                 batch_size)
            for name in ("kl", "dnll"):
                rec.update(zip((name, f"{name}_lo", f"{name}_hi"), _ci(side[name], n_boot, seed)))
        if is_ab:
            if steering:
                answers = answer_scores(model, base, vector, [signed], batch_size=batch_size)
            else:
                variant = "SYS_POS" if arm == "pos" else "SYS_NEG"
                answers = answer_scores(model, apply_variant(pairs, variant, sentences), None, [0.0], batch_size=batch_size)
            rec.update(zip(("format_mass", "format_mass_lo", "format_mass_hi"), _ci(answers["format_mass"], n_boot, seed)))
        if generation_messages:
            gens = _arm_generations(model, generation_messages, vector if steering else None, signed,
                                    BASE_SYSTEM_PROMPT if steering else sentence, max_new_tokens, batch_size)
            for name in GENERATION_METRICS:
                rec.update(zip((name, f"{name}_lo", f"{name}_hi"), _ci(gens[name], n_boot, seed)))
        records.append(rec)
    records += _contrast_records(arms, dataset, layer, units, n_boot, seed)
    return pd.DataFrame.from_records(records).reindex(columns=BASELINE_COLUMNS)


def _reused_neutral(steered_neutral: pd.DataFrame | None, neutral: NeutralSet | None, layer: int,
                    m: float) -> pd.DataFrame | None:
    """The caller's neutral side-effect rows at ±m, checked complete (ConfigError naming what is missing)."""
    if steered_neutral is None:
        return None
    if neutral is None:
        raise ConfigError("prompting_baseline: steered_neutral given without the neutral set it was computed on")
    return _reused_rows(steered_neutral, "steered_neutral", layer, [-m, m], "passage_id", list(neutral.passage_ids),
                        ("kl", "dnll"))


def _reference_and_arms(model, engine: PropensityEngine, pairs: Sequence[ContrastivePair],
                        base: Sequence[ContrastivePair], vector: SteeringVector, m: float, sentences: PersonaSentences,
                        steered: pd.DataFrame | None, layer: int, units: str, batch_size: int) -> tuple[pd.Series, dict]:
    """The unsteered BASE propensities (``reference``, pair order) and the four arms ``{(method, arm): (per-sample
    propensities, setting label)}``: steering at ±m (``steered`` rows reused when given) and the SYS_POS / SYS_NEG
    persona prompts, unsteered."""
    base_ids = [p.id for p in base]
    if steered is None:
        steered = engine(model, base, vector, [-m, 0.0, m], batch_size=batch_size, progress=False)
    else:
        steered = _reused_rows(steered, "steered", layer, [-m, 0.0, m], "sample_id", base_ids,
                               ("propensity",))
    by_m = {mult: frame.set_index("sample_id")["propensity"] for mult, frame in steered.groupby("multiplier")}
    reference = by_m[0.0].reindex(base_ids)  # pair order, whichever table the rows came from
    prompted = {}
    for variant in ("SYS_POS", "SYS_NEG"):
        frame = engine(model, apply_variant(pairs, variant, sentences), vector, [0.0], batch_size=batch_size, progress=False)
        prompted[variant] = frame.set_index("sample_id")["propensity"].reindex(reference.index)
    arms = {
        ("steering", "pos"): (by_m[m].reindex(reference.index), f"multiplier +{m:g} ({units})"),
        ("steering", "neg"): (by_m[-m].reindex(reference.index), f"multiplier -{m:g} ({units})"),
        ("prompting", "pos"): (prompted["SYS_POS"], "SYS_POS persona prompt"),
        ("prompting", "neg"): (prompted["SYS_NEG"], "SYS_NEG persona prompt"),
    }
    return reference, arms


def _neutral_rows(model, neutral: NeutralSet, vector: SteeringVector | None, signed: float, sentence: str,
                  steered_neutral: pd.DataFrame | None, batch_size: int) -> pd.DataFrame:
    """The neutral-corpus KL / ΔNLL rows of one arm: steering at ``signed`` (reused from ``steered_neutral`` when
    given), or (``vector`` None) the persona ``sentence`` prefixed, unsteered."""
    if vector is not None and steered_neutral is not None:
        return steered_neutral[steered_neutral["multiplier"] == signed]
    if vector is not None:
        return neutral_side_effects(model, neutral, vector, [signed], batch_size=batch_size)
    prefix = encode_text(model.tokenizer, sentence + "\n\n")
    return neutral_side_effects(model, neutral, None, [0.0], prefix_ids=prefix, batch_size=batch_size)


def _arm_generations(model, messages: Sequence[str], vector: SteeringVector | None, signed: float, system: str,
                     max_new_tokens: int, batch_size: int) -> pd.DataFrame:
    """Generations of one arm: steered at ``signed`` under the base system prompt, or (``vector`` None) unsteered
    under the persona ``system`` prompt."""
    prompts = [chat_prompt(model, msg, system_prompt=system) for msg in messages]
    return generation_side_effects(model, prompts, vector, [signed if vector is not None else 0.0],
                                   max_new_tokens=max_new_tokens, batch_size=batch_size)


def _contrast_records(arms: dict, dataset: str, layer: int, units: str, n_boot: int, seed: int) -> list[dict]:
    """Per method, the pos − neg contrast of the per-sample propensities with its interval."""
    records = []
    for method in ("steering", "prompting"):
        contrast = arms[(method, "pos")][0] - arms[(method, "neg")][0]
        rec = {"dataset": dataset, "method": method, "arm": "contrast", "setting": "pos − neg", "layer": layer,
               "multiplier": np.nan, "units": units, "raw_multiplier": np.nan, "n_samples": int(contrast.notna().sum())}
        rec.update(zip(("shift", "shift_lo", "shift_hi"), _ci(contrast, n_boot, seed)))
        records.append(rec)
    return records
