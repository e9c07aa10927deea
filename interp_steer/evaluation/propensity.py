"""The propensity engine: how strongly a steered model prefers the positive response, per sample and multiplier.

Propensity (Tan et al. 2024) is read without generation:

* **A/B pairs** — the prompt plus the response prefix up to the answer letter (``"("`` of ``"(A)"``) is run and the
  next-token logits at its last position are compared: ``logit_diff = logit(pos letter) − logit(neg letter)`` (the
  propensity), ``logprob_diff`` (the same difference of log-probabilities) and
  ``pos_prob = p(pos) / (p(pos) + p(neg))``.
* **free-text pairs** — propensity is the summed log-probability of the positive completion minus that of the
  negative completion (two sequences per sample).

Steering is added from the last prompt token on. All multipliers of a sample travel along the batch axis
(rows = samples × multipliers, left-padded), with the multiplier and the steering start passed to
:func:`~interp_steer.steering.steer` as ``[batch]`` tensors; one forward pass per chunk of rows. Only the final
residual of the scored positions is unembedded, so memory does not grow with vocabulary × sequence length.

:func:`compute_propensities` is a pure function of one *work unit* (pairs of one dataset × one single-hook vector
× multipliers) so an executor can schedule, cache or distribute units and swap in another engine with the same
signature (e.g. :func:`interp_steer.evaluation.naive.naive_propensities`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.tokenization import PaddedBatch, answer_letter_index, encode_pair, left_pad, pad_token_id
from interp_steer.errors import ConfigError, DataFormatError
from interp_steer.scoring import LetterScore, answer_letter_scores, completion_logprobs, final_logits  # noqa: F401
from interp_steer.steering.apply import steer
from interp_steer.steering.hook_names import layer_of
from interp_steer.steering.vector import SteeringVector

PROPENSITY_COLUMNS = [
    "sample_id", "dataset", "variant", "layer", "hook_name", "vector", "multiplier", "propensity",
    "logit_diff", "logprob_diff", "pos_prob", "pos_logprob", "neg_logprob", "kind", "is_A", "is_Yes",
]
"""Columns of every propensity table (A/B-only columns are NaN for free-text rows and vice versa)."""


@dataclass(frozen=True)
class ScoringRow:
    """One sequence to run: token ids, where steering starts (relative to the first real token) and what to score.

    A/B rows score the next token after the last position (``letters = (pos, neg)``); free-text rows score the
    tokens ``ids[score_from:]`` (their summed log-prob).
    """

    sample: int
    side: str  # "ab", "pos" or "neg"
    ids: tuple[int, ...]
    steer_from: int
    letters: tuple[int, int] | None = None
    score_from: int | None = None


def vector_label(vector: SteeringVector) -> str:
    """Default name of a vector in result tables: ``method:dataset`` from its provenance (or ``vector``)."""
    prov = vector.provenance
    parts = [p for p in (prov.method, prov.dataset) if p]
    return ":".join(parts) or "vector"


letter_index = answer_letter_index
"""Index of the answer-letter token in ``"(A)"``-style response ids (:func:`~interp_steer.data.tokenization.answer_letter_index`)."""


def scoring_rows(tokenizer, pairs: Sequence[ContrastivePair], n_ctx: int | None = None) -> list[ScoringRow]:
    """The sequences (one per A/B sample, two per free-text sample) that score ``pairs``, in sample order.

    ``n_ctx`` (the model's context): a pair that does not fit is a ``DataFormatError`` naming it."""
    rows: list[ScoringRow] = []
    for index, pair in enumerate(pairs):
        enc = encode_pair(tokenizer, pair, n_ctx=n_ctx)
        prompt = enc.prompt_ids
        if pair.kind == "ab":
            pos_at, neg_at = answer_letter_index(tokenizer, enc.positive_ids), answer_letter_index(tokenizer, enc.negative_ids)
            prefix = enc.positive_ids[:pos_at]
            if prefix != enc.negative_ids[:neg_at]:
                raise DataFormatError(
                    f"pair {pair.id!r} of dataset {pair.dataset!r}: responses {pair.positive!r} / {pair.negative!r} "
                    "do not share the prefix before the answer letter; use '(A)'-style answers"
                )
            letters = (enc.positive_ids[pos_at], enc.negative_ids[neg_at])
            if letters[0] == letters[1]:
                raise DataFormatError(f"pair {pair.id!r} of dataset {pair.dataset!r}: both answers have the same letter token")
            rows.append(ScoringRow(index, "ab", prompt + prefix, len(prompt) - 1, letters=letters))
        elif pair.kind == "free_text":
            for side, completion in (("pos", enc.positive_ids), ("neg", enc.negative_ids)):
                rows.append(ScoringRow(index, side, prompt + completion, len(prompt) - 1, score_from=len(prompt)))
        else:
            raise DataFormatError(f"pair {pair.id!r} of dataset {pair.dataset!r} has unknown kind {pair.kind!r}")
    return rows


RawScore = LetterScore | float
"""The raw score of one scoring row: an A/B row's letter scores, or a free-text row's summed completion log-prob."""


def _score_chunk(
    model: HookedTransformer,
    vector: SteeringVector,
    rows: Sequence[ScoringRow],
    multipliers: Sequence[float],
    pad: int,
    device,
) -> list[RawScore]:
    """Run one left-padded chunk (each row with its own multiplier) and return its raw scores."""
    batch = left_pad([r.ids for r in rows], pad).to(device)
    mult: Float[Tensor, "batch"] = torch.tensor(multipliers, dtype=torch.float32, device=device)
    start: Int[Tensor, "batch"] = batch.absolute([r.steer_from for r in rows])
    with steer(model, vector, multiplier=mult, positions=start):
        final = model(batch.tokens, attention_mask=batch.attention_mask, stop_at_layer=model.cfg.n_layers)
    return row_scores(model, final, batch, rows)


def row_scores(
    model: HookedTransformer, final: Float[Tensor, "batch pos d_model"], batch: PaddedBatch, rows: Sequence[ScoringRow]
) -> list[RawScore]:
    """Raw scores of a left-padded batch from its final residual (``rows[i]`` describes batch row ``i``): the
    letter scores at the last position of A/B rows, the summed log-prob of ``ids[score_from:]`` of free-text rows."""
    scores: list[RawScore] = [0.0] * len(rows)
    ab = [i for i, r in enumerate(rows) if r.letters is not None]
    if ab:
        letters = torch.tensor([rows[i].letters for i in ab], device=final.device)
        for i, score in zip(ab, answer_letter_scores(model, final[ab, batch.width - 1], letters).per_row()):
            scores[i] = score
    ft = [i for i, r in enumerate(rows) if r.letters is None]
    if ft:
        first = batch.offsets[ft] + torch.tensor([rows[i].score_from for i in ft], device=batch.offsets.device)
        mask = torch.arange(batch.width, device=first.device)[None, :] >= first[:, None]
        totals = completion_logprobs(model, final[ft], batch.tokens[ft], mask).logprob.tolist()
        for i, total in zip(ft, totals):
            scores[i] = total
    return scores


def _check_inputs(model: HookedTransformer, pairs: Sequence[ContrastivePair], multipliers: Sequence[float], batch_size: int) -> None:
    if not pairs:
        raise ConfigError("no pairs to evaluate: pass at least one ContrastivePair")
    if len(multipliers) == 0:
        raise ConfigError("no multipliers: pass e.g. multipliers=[-1, 0, 1]")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be ≥ 1, got {batch_size}")
    if not all(np.isfinite(float(m)) for m in multipliers):
        raise ConfigError(f"multipliers must be finite numbers, got {list(multipliers)}")
    if len({float(m) for m in multipliers}) != len(multipliers):
        raise ConfigError(f"multipliers contain duplicates: {list(multipliers)}")
    ids = [p.id for p in pairs if p.id]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataFormatError(f"pair id {dup!r} occurs more than once; sample ids must be unique within a work unit")
    if getattr(model, "tokenizer", None) is None:
        raise ConfigError("the model has no tokenizer attached; load it with interp_steer.models.load_model")


def propensity_frame(
    pairs: Sequence[ContrastivePair],
    vector: SteeringVector,
    multipliers: Sequence[float],
    scores: Mapping[tuple[int, str, float], RawScore],
    vector_name: str,
) -> pd.DataFrame:
    """Assemble the tidy table from raw scores keyed by (sample index, side, multiplier): a :class:`LetterScore`
    for ``side="ab"``, the summed completion log-prob for ``"pos"`` and ``"neg"``."""
    hook_name = vector.hook_names[0]
    records = []
    for index, pair in enumerate(pairs):
        for m in multipliers:
            rec = {
                "sample_id": pair.id or str(index), "dataset": pair.dataset, "variant": pair.variant,
                "layer": layer_of(hook_name), "hook_name": hook_name, "vector": vector_name, "multiplier": float(m),
                "kind": pair.kind, "is_A": pair.is_A, "is_Yes": pair.is_Yes,
            }
            if pair.kind == "ab":
                ab = scores[(index, "ab", float(m))]
                assert isinstance(ab, LetterScore)
                rec.update(logit_diff=ab.logit_diff, logprob_diff=ab.logprob_diff, pos_prob=ab.pos_prob,
                           propensity=ab.logit_diff)
            else:
                pos, neg = scores[(index, "pos", float(m))], scores[(index, "neg", float(m))]
                assert not isinstance(pos, LetterScore) and not isinstance(neg, LetterScore)
                rec.update(pos_logprob=pos, neg_logprob=neg, propensity=pos - neg)
            records.append(rec)
    frame = pd.DataFrame.from_records(records).reindex(columns=PROPENSITY_COLUMNS)
    float_cols = ["multiplier", "propensity", "logit_diff", "logprob_diff", "pos_prob", "pos_logprob", "neg_logprob"]
    frame[float_cols] = frame[float_cols].astype("float64")
    frame["layer"] = frame["layer"].astype("int64")
    for col in ("is_A", "is_Yes"):
        frame[col] = frame[col].astype("boolean")
    return frame


@torch.inference_mode()
def compute_propensities(
    model: HookedTransformer,
    pairs: Sequence[ContrastivePair],
    vector: SteeringVector,
    multipliers: Sequence[float],
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool = False,
    vector_name: str | None = None,
) -> pd.DataFrame:
    """Propensity of every (pair, multiplier) under ``multiplier × vector`` (one hook), as a tidy DataFrame.

    ``batch_size`` counts rows (sequences) per forward pass; the rows of all multipliers are interleaved so a
    chunk holds every multiplier of a few samples. ``device`` defaults to the model's device.
    Columns: :data:`PROPENSITY_COLUMNS`, one row per (pair, multiplier).
    """
    _check_inputs(model, pairs, multipliers, batch_size)
    vector = vector.select()
    vector.check_fits(model)
    device = device or model.cfg.device
    vector = vector.to(device, dtype=model.cfg.dtype)
    rows = scoring_rows(model.tokenizer, pairs, n_ctx=model.cfg.n_ctx)
    # sort by length inside the row list so chunks pad little; the order does not change any score
    expanded = sorted(((row, float(m)) for row in rows for m in multipliers), key=lambda rm: len(rm[0].ids))
    pad = pad_token_id(model.tokenizer)
    scores: dict[tuple[int, str, float], RawScore] = {}
    for lo in tqdm(range(0, len(expanded), batch_size), desc="propensity", disable=not progress, leave=False):
        chunk = expanded[lo:lo + batch_size]
        chunk_scores = _score_chunk(model, vector, [r for r, _ in chunk], [m for _, m in chunk], pad, device)
        for (row, m), score in zip(chunk, chunk_scores):
            scores[(row.sample, row.side, m)] = score
    return propensity_frame(pairs, vector, multipliers, scores, vector_name or vector_label(vector))
