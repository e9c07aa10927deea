"""Reading the propensity metric off final residual streams, with the evaluation engine's definitions.

A sample is scored exactly as :func:`interp_steer.evaluation.compute_propensities` scores it: the sequences
come from :func:`~interp_steer.evaluation.propensity.scoring_rows` (A/B: prompt + response prefix up to the
answer letter, metric = logit(pos letter) − logit(neg letter) at the last position; free text: prompt +
completion, metric = summed log-prob of the positive completion − that of the negative one) and steering
starts at the last prompt token. Only the scored positions are unembedded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.tokenization import PaddedBatch, encode_pair, left_pad, pad_token_id
from interp_steer.errors import ConfigError
from interp_steer.evaluation.propensity import ScoringRow, row_scores, scoring_rows
from interp_steer.scoring import LetterScore


@dataclass(frozen=True)
class SampleSequences:
    """The one (A/B) or two (free text: positive, negative) sequences that score one pair."""

    pair: ContrastivePair
    rows: tuple[ScoringRow, ...]

    @property
    def steer_from(self) -> int:
        """Index (from the first real token) of the last prompt token, where steering starts."""
        return self.rows[0].steer_from

    @property
    def max_len(self) -> int:
        return max(len(r.ids) for r in self.rows)

    def batch(self, copies: int, pad_id: int) -> PaddedBatch:
        """``copies`` repetitions of the sequences, row ``c * len(rows) + s`` = copy ``c`` of sequence ``s``."""
        return left_pad([r.ids for _ in range(copies) for r in self.rows], pad_id)

    def token_labels(self, tokenizer) -> list[str]:
        """One label per position up to ``max_len``: the token, or ``pos|neg`` where the sequences differ."""
        labels = []
        for position in range(self.max_len):
            pieces = [tokenizer.decode([r.ids[position]]) if position < len(r.ids) else "∅" for r in self.rows]
            labels.append(pieces[0] if len(set(pieces)) == 1 else "|".join(pieces))
        return labels


def sample_sequences(tokenizer, pair: ContrastivePair) -> SampleSequences:
    """The scoring sequences of ``pair`` (same as the propensity engine's)."""
    return SampleSequences(pair, tuple(scoring_rows(tokenizer, [pair])))


def sequence_scores(
    model: HookedTransformer,
    final: Float[Tensor, "batch pos d_model"],
    batch: PaddedBatch,
    rows: Sequence[ScoringRow],
) -> Float[Tensor, "batch"]:
    """Per batch row: the A/B logit diff, or the summed completion log-prob (free text); ``rows[i]`` describes row i.

    The engine's own scoring (:func:`~interp_steer.evaluation.propensity.row_scores`, built on
    :mod:`interp_steer.scoring`), as one float64 value per row."""
    raw = row_scores(model, final, batch, rows)
    return torch.tensor([s.logit_diff if isinstance(s, LetterScore) else s for s in raw], dtype=torch.float64)


def combine_sides(scores: Float[Tensor, "batch"], n_sides: int) -> Float[Tensor, "copies"]:
    """Per copy: the A/B score itself (one side) or positive − negative (two sides)."""
    grouped = scores.view(-1, n_sides)
    return grouped[:, 0] if n_sides == 1 else grouped[:, 0] - grouped[:, 1]


@dataclass(frozen=True)
class AnswerReadout:
    """Where two responses first diverge: the sequence up to that point and the two next tokens.

    For A/B pairs this is the engine's readout (prefix ``"("``, letters); for free text it is the first token
    at which the completions differ (an approximation of the summed log-prob metric used for direct effects).
    """

    ids: tuple[int, ...]
    steer_from: int
    positive_token: int
    negative_token: int


def answer_readout(tokenizer, pair: ContrastivePair) -> AnswerReadout:
    """The :class:`AnswerReadout` of ``pair``; ConfigError if one response is a prefix of the other."""
    enc = encode_pair(tokenizer, pair)
    shared = 0
    while shared < min(len(enc.positive_ids), len(enc.negative_ids)) and enc.positive_ids[shared] == enc.negative_ids[shared]:
        shared += 1
    if shared == len(enc.positive_ids) or shared == len(enc.negative_ids):
        raise ConfigError(f"pair {pair.id!r}: one response is a token prefix of the other; no diverging answer token")
    ids = enc.prompt_ids + enc.positive_ids[:shared]
    return AnswerReadout(ids, len(enc.prompt_ids) - 1, enc.positive_ids[shared], enc.negative_ids[shared])


def single_batch(ids: Sequence[int], tokenizer, device) -> PaddedBatch:
    """A one-row batch (no padding) on ``device``."""
    return left_pad([list(ids)], pad_token_id(tokenizer)).to(device)


def clean_and_steered_caches(model, vector, pair: ContrastivePair, multiplier: float, names):
    """Unsteered and steered ``run_with_cache`` of a pair's answer readout sequence (hooks in ``names`` only)."""
    from interp_steer.steering.apply import steer

    readout = answer_readout(model.tokenizer, pair)
    batch = single_batch(readout.ids, model.tokenizer, model.cfg.device)
    start = batch.absolute([readout.steer_from])
    _, clean = model.run_with_cache(batch.tokens, attention_mask=batch.attention_mask, names_filter=lambda n: n in names)
    with steer(model, vector, multiplier=float(multiplier), positions=start):
        _, steered = model.run_with_cache(batch.tokens, attention_mask=batch.attention_mask, names_filter=lambda n: n in names)
    return readout, clean, steered
