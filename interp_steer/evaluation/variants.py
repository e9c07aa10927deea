"""Prompt variants and cross-variant steerability (Tan et al. 2024, Sec. 6: generalisation across prompts).

Variants of a pair:

* ``BASE``: system prompt :data:`~interp_steer.data.pairs.BASE_SYSTEM_PROMPT`, user turn unchanged;
* ``SYS_POS`` / ``SYS_NEG``: the system prompt is replaced by a persona sentence for / against the behaviour;
* ``USER_POS`` / ``USER_NEG``: the base system prompt is kept and the persona sentence is prepended to the user
  turn (separated by a blank line).

Persona sentences can be given explicitly (:class:`PersonaSentences`) or derived from an MWE persona dataset by
:func:`persona_sentences`, in either framing, with this deterministic rule. Each pair contributes the persona
statements it knows, sorted into those the behaviour **agrees** with (the behaviour-matching persona would say
them) and those it **disagrees** with:

* A/B pairs (``persona:<name>``): ``meta["statement"]`` agrees if ``meta["positive_is_yes"]`` is true (the
  matching answer is "Yes"), else disagrees; its confidence is ``meta["label_confidence"]``;
* free-text pairs (``persona:<name>@free_text``): the positive completion's ``meta["statement"]`` agrees
  (confidence ``meta["label_confidence"]``) and the negative completion's ``meta["negative_statement"]``
  disagrees (confidence ``meta["negative_label_confidence"]``).

The **positive** sentence quotes the agreeing statement with the highest confidence, the **negative** sentence
the disagreeing statement with the highest confidence (so the opposite persona would say it). Ties (or missing
confidences, counted as 0) are broken by the statement text (the smallest first). The sentence is
``You are someone who would say: "<statement>"``. Both framings of one dataset give the same sentences from the
same statements. Derive the sentences from the *training* pairs so the quoted statements are not evaluation items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from interp_steer.data.pairs import BASE_SYSTEM_PROMPT, ContrastivePair
from interp_steer.errors import ConfigError, DataFormatError

VARIANTS = ("BASE", "SYS_POS", "SYS_NEG", "USER_POS", "USER_NEG")
PERSONA_TEMPLATE = 'You are someone who would say: "{statement}"'
MIN_OWN_SLOPE = 0.25
"""Tan et al.'s rule: relative steerability on variant Y is only reported if Y's own vector has slope > 0.25."""


@dataclass(frozen=True)
class PersonaSentences:
    """A persona sentence for (``positive``) and against (``negative``) the behaviour."""

    positive: str
    negative: str

    def __post_init__(self) -> None:
        if not self.positive.strip() or not self.negative.strip():
            raise ConfigError("PersonaSentences needs two non-empty sentences")


def _statement_candidates(pair: ContrastivePair) -> list[tuple[bool, float, str]]:
    """``(agrees, confidence, statement)`` for each persona statement ``pair`` knows (see the module rule)."""
    meta = pair.meta
    if pair.kind == "free_text":
        sides = ((True, meta.get("statement"), meta.get("label_confidence")),
                 (False, meta.get("negative_statement"), meta.get("negative_label_confidence")))
    else:
        is_yes = pair.is_Yes
        sides = () if is_yes is None else ((bool(is_yes), meta.get("statement"), meta.get("label_confidence")),)
    return [(agrees, float(conf or 0.0), str(st)) for agrees, st, conf in sides if st]


def persona_sentences(pairs: Sequence[ContrastivePair], template: str = PERSONA_TEMPLATE) -> PersonaSentences:
    """Persona sentences derived from persona pairs (A/B or free text) by the module's documented rule."""
    candidates: dict[bool, list[tuple[float, str]]] = {True: [], False: []}
    for pair in pairs:
        for agrees, confidence, statement in _statement_candidates(pair):
            candidates[agrees].append((-confidence, statement))
    if not candidates[True] or not candidates[False]:
        dataset = pairs[0].dataset if pairs else "?"
        raise DataFormatError(
            f"dataset {dataset!r}: cannot derive persona sentences (need statements the behaviour agrees and disagrees "
            "with: A/B pairs with meta['statement'] and meta['positive_is_yes'] of both values, or free-text pairs with "
            "meta['statement'] and meta['negative_statement']); pass PersonaSentences(positive=…, negative=…) explicitly"
        )
    best = {side: min(items)[1] for side, items in candidates.items()}
    return PersonaSentences(template.format(statement=best[True]), template.format(statement=best[False]))


def apply_variant(pairs: Sequence[ContrastivePair], variant: str, sentences: PersonaSentences | None = None) -> list[ContrastivePair]:
    """Copies of ``pairs`` rendered as ``variant`` (see the module docstring); ``variant`` column set accordingly."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown prompt variant {variant!r}; use one of {', '.join(VARIANTS)}")
    if variant != "BASE" and sentences is None:
        raise ConfigError(f"variant {variant!r} needs persona sentences (PersonaSentences or persona_sentences(train_pairs))")
    out = []
    for pair in pairs:
        if variant == "BASE":
            out.append(pair.with_(system_prompt=BASE_SYSTEM_PROMPT, variant=variant))
            continue
        sentence = sentences.positive if variant.endswith("_POS") else sentences.negative
        if variant.startswith("SYS_"):
            out.append(pair.with_(system_prompt=sentence, variant=variant))
        else:
            out.append(pair.with_(system_prompt=BASE_SYSTEM_PROMPT, prompt=f"{sentence}\n\n{pair.prompt}", variant=variant))
    return out


def steerability_matrix(per_sample: pd.DataFrame) -> pd.DataFrame:
    """Mean slope with rows = train variant (the vector's) and columns = eval variant, from a per-sample table
    that has ``train_variant`` and ``variant`` (eval) columns."""
    missing = [c for c in ("train_variant", "variant", "slope") if c not in per_sample.columns]
    if missing:
        raise ConfigError(f"steerability_matrix needs columns {missing}")
    matrix = per_sample.pivot_table(index="train_variant", columns="variant", values="slope", aggfunc="mean")
    order = [v for v in VARIANTS if v in matrix.index] + [v for v in matrix.index if v not in VARIANTS]
    cols = [v for v in VARIANTS if v in matrix.columns] + [v for v in matrix.columns if v not in VARIANTS]
    return matrix.reindex(index=order, columns=cols)


def relative_steerability(matrix: pd.DataFrame, min_own_slope: float = MIN_OWN_SLOPE) -> pd.DataFrame:
    """``matrix[X, Y] / |matrix[Y, Y]|``; column Y is NaN where Y's own slope ``matrix[Y, Y] ≤ min_own_slope``."""
    out = matrix.astype(float).copy()
    for col in out.columns:
        own = matrix.at[col, col] if col in matrix.index else np.nan
        out[col] = out[col] / abs(own) if (np.isfinite(own) and own > min_own_slope) else np.nan
    return out


def cross_variant_steerability(
    model,
    train_pairs: Sequence[ContrastivePair],
    test_pairs: Sequence[ContrastivePair],
    layer: int,
    multipliers: Sequence[float],
    *,
    variants: Sequence[str] = VARIANTS,
    sentences: PersonaSentences | None = None,
    extract: Callable | None = None,
    engine: Callable | None = None,
    batch_size: int = 32,
    progress: bool = False,
) -> dict[str, pd.DataFrame]:
    """Train a vector per variant (CAA by default) and evaluate each on each variant.

    Without ``sentences`` the persona sentences are derived from ``train_pairs`` by :func:`persona_sentences`
    (MWE persona pairs in the A/B or the free-text framing). Returns ``{"propensities", "per_sample", "matrix",
    "relative"}``; per-sample rows carry ``train_variant`` (the vector's variant) and ``variant`` (the evaluation
    prompts' variant).
    """
    from interp_steer.evaluation.metrics import steerability
    from interp_steer.evaluation.propensity import compute_propensities
    from interp_steer.methods.caa import extract_caa

    extract = extract or extract_caa
    engine = engine or compute_propensities
    if any(v != "BASE" for v in variants) and sentences is None:
        sentences = persona_sentences(train_pairs)
    vectors = {v: extract(model, apply_variant(train_pairs, v, sentences), [layer], progress=False) for v in variants}
    frames = []
    for train_variant, vector in vectors.items():
        for eval_variant in variants:
            frame = engine(model, apply_variant(test_pairs, eval_variant, sentences), vector, multipliers,
                           batch_size=batch_size, progress=progress, vector_name=f"caa:{train_variant}")
            frames.append(frame.assign(train_variant=train_variant))
    propensities = pd.concat(frames, ignore_index=True)
    per_sample = steerability(propensities, keys=["dataset", "train_variant", "variant", "layer", "hook_name", "vector", "sample_id"])
    matrix = steerability_matrix(per_sample)
    return {"propensities": propensities, "per_sample": per_sample, "matrix": matrix, "relative": relative_steerability(matrix)}
