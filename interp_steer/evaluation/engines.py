"""The propensity engines by name, behind one typed protocol.

Every engine returns the same table (:data:`~interp_steer.evaluation.propensity.PROPENSITY_COLUMNS`, one row per
(pair, multiplier)) for one single-hook vector, steering from the last prompt token on; they differ in speed and
in how they batch, and agree to float precision (the tests run every registered engine on the same inputs):

========  ==========================================================================================  ============
name      implementation                                                                              batch_size
========  ==========================================================================================  ============
fast      :func:`~interp_steer.evaluation.fast_engine.fast_propensities` (shared-prefix KV cache)      ignored: the memory budget sizes chunks
batched   :func:`~interp_steer.evaluation.propensity.compute_propensities` (left-padded batches)      rows per forward (default 32)
naive     :func:`~interp_steer.evaluation.naive.naive_propensities` (one unpadded forward per row)     unused (1)
answers   :func:`~interp_steer.evaluation.side_effects.answer_scores` (A/B pairs only, full softmax)  rows per forward (default 16)
========  ==========================================================================================  ============

Jobs take an engine by name or as an object (:func:`resolve_engine`); :func:`get_engine` turns a name into the
engine and refuses an unknown one with a one-line :class:`~interp_steer.errors.ConfigError`.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import pandas as pd
import torch
from transformer_lens import HookedTransformer

from interp_steer.data.pairs import ContrastivePair
from interp_steer.errors import ConfigError, DataFormatError
from interp_steer.steering.vector import SteeringVector


@runtime_checkable
class PropensityEngine(Protocol):
    """``engine(model, pairs, vector, multipliers, *, batch_size=None, device=None, progress=False,
    vector_name=None) -> propensity table``: what every registered engine is and what jobs accept."""

    def __call__(self, model: HookedTransformer, pairs: Sequence[ContrastivePair], vector: SteeringVector,
                 multipliers: Sequence[float], *, batch_size: int | None = None,
                 device: str | torch.device | None = None, progress: bool = False,
                 vector_name: str | None = None) -> pd.DataFrame: ...


def fast_engine(model: HookedTransformer, pairs: Sequence[ContrastivePair], vector: SteeringVector,
                multipliers: Sequence[float], *, batch_size: int | None = None,
                device: str | torch.device | None = None, progress: bool = False,
                vector_name: str | None = None) -> pd.DataFrame:
    """The ``fast`` engine: :func:`~interp_steer.evaluation.fast_engine.fast_propensities`; ``batch_size`` is left to
    its memory budget (as every job has called it)."""
    from interp_steer.evaluation.fast_engine import fast_propensities

    del batch_size
    return fast_propensities(model, pairs, vector, multipliers, device=device, progress=progress,
                             vector_name=vector_name)


def batched_engine(model: HookedTransformer, pairs: Sequence[ContrastivePair], vector: SteeringVector,
                   multipliers: Sequence[float], *, batch_size: int | None = None,
                   device: str | torch.device | None = None, progress: bool = False,
                   vector_name: str | None = None) -> pd.DataFrame:
    """The ``batched`` engine: :func:`~interp_steer.evaluation.propensity.compute_propensities` (``batch_size``
    rows per forward, default 32)."""
    from interp_steer.evaluation.propensity import compute_propensities

    return compute_propensities(model, pairs, vector, multipliers, batch_size=32 if batch_size is None else batch_size,
                                device=device, progress=progress, vector_name=vector_name)


def naive_engine(model: HookedTransformer, pairs: Sequence[ContrastivePair], vector: SteeringVector,
                 multipliers: Sequence[float], *, batch_size: int | None = None,
                 device: str | torch.device | None = None, progress: bool = False,
                 vector_name: str | None = None) -> pd.DataFrame:
    """The ``naive`` reference engine: :func:`~interp_steer.evaluation.naive.naive_propensities` (one unpadded
    forward per sequence and multiplier; ``batch_size`` is unused)."""
    from interp_steer.evaluation.naive import naive_propensities

    del batch_size
    return naive_propensities(model, pairs, vector, multipliers, device=device, progress=progress,
                              vector_name=vector_name)


def answers_engine(model: HookedTransformer, pairs: Sequence[ContrastivePair], vector: SteeringVector,
                   multipliers: Sequence[float], *, batch_size: int | None = None,
                   device: str | torch.device | None = None, progress: bool = False,
                   vector_name: str | None = None) -> pd.DataFrame:
    """The ``answers`` engine, A/B pairs only: :func:`~interp_steer.evaluation.side_effects.answer_scores` (the
    answer letters' log-probabilities under the full softmax, ``batch_size`` rows per forward, default 16) as a
    propensity table (``propensity = logit_diff = logprob_diff``). ``device`` must be the model's own."""
    from interp_steer.evaluation.propensity import _check_inputs, vector_label

    del progress
    rows = 16 if batch_size is None else batch_size
    _check_inputs(model, pairs, multipliers, rows)
    free = [p.id for p in pairs if p.kind != "ab"]
    if free:
        raise DataFormatError(f"engine 'answers' scores A/B pairs only; pair {free[0]!r} is free text")
    if device is not None and torch.device(device) != torch.device(str(model.cfg.device)):
        raise ConfigError(f"engine 'answers' runs on the model's device {model.cfg.device}, not {device}")
    vector = vector.select()
    return scored_propensities(model, pairs, vector, multipliers, batch_size=rows,
                               vector_name=vector_name or vector_label(vector))[0]


ANSWER_COLUMNS = ["sample_id", "dataset", "multiplier", "is_A", "logit_diff", "correct", "pos_prob", "format_mass"]
"""Columns of :func:`~interp_steer.evaluation.side_effects.answer_scores` (and of an empty answers table)."""


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


ENGINES: dict[str, PropensityEngine] = {
    "fast": fast_engine, "batched": batched_engine, "naive": naive_engine, "answers": answers_engine,
}
"""The registered engines by name (see the module's table)."""


def get_engine(name: str, option: str = "engine") -> PropensityEngine:
    """The engine registered as ``name``; an unknown name is a one-line ConfigError naming ``option`` and the names."""
    try:
        return ENGINES[name]
    except (KeyError, TypeError):
        raise ConfigError(f"{option} {name!r}: unknown engine; choose one of {', '.join(ENGINES)}") from None


def resolve_engine(engine: str | PropensityEngine | None, default: str = "batched",
                   option: str = "engine") -> PropensityEngine:
    """``engine`` as an engine: a registered name, an engine object (returned as is), or ``None`` for ``default``."""
    if engine is None:
        return get_engine(default, option)
    if isinstance(engine, str):
        return get_engine(engine, option)
    if not callable(engine):
        raise ConfigError(f"{option}: expected an engine name ({', '.join(ENGINES)}) or a callable, got {engine!r}")
    return engine
