"""Summed log-probabilities of response tokens, prompt tokens and pads masked out.

Used by preference-style methods (BiPO) on batches that hold the positive and the negative response of
each pair as separate left-padded rows. Only the positions that predict a response token are unembedded
(by :mod:`interp_steer.scoring`), which saves the full-vocabulary projection of every prompt position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from interp_steer.data.tokenization import EncodedPair, PaddedBatch, left_pad, response_mask
from interp_steer.errors import DataFormatError
from interp_steer.scoring import completion_logprobs


@dataclass
class PreferenceBatch:
    """``2 * n_pairs`` left-padded rows: rows ``[0, n)`` are prompt + positive, rows ``[n, 2n)`` prompt + negative."""

    padded: PaddedBatch
    response_mask: Bool[Tensor, "rows pos"]

    @property
    def n_pairs(self) -> int:
        return self.padded.tokens.shape[0] // 2

    def to(self, device) -> "PreferenceBatch":
        return PreferenceBatch(self.padded.to(device), self.response_mask.to(device))


def preference_batch(encoded: Sequence[EncodedPair], pad_id: int) -> PreferenceBatch:
    """Stack the positive rows, then the negative rows, of ``encoded`` into one left-padded batch."""
    if not encoded:
        raise DataFormatError("cannot build a preference batch from zero pairs")
    if any(len(e.prompt_ids) == 0 for e in encoded):
        raise DataFormatError("every pair needs a non-empty prompt: the first response token is predicted from it")
    sequences = [e.prompt_ids + e.positive_ids for e in encoded] + [e.prompt_ids + e.negative_ids for e in encoded]
    prompt_lens = [len(e.prompt_ids) for e in encoded] * 2
    padded = left_pad(sequences, pad_id)
    return PreferenceBatch(padded, response_mask(padded, prompt_lens))


def response_logprob_sums(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    attention_mask: Int[Tensor, "batch pos"],
    response_mask: Bool[Tensor, "batch pos"],
) -> Float[Tensor, "batch"]:
    """Per row, the sum over response tokens ``t`` of ``log p(tokens[t] | tokens[:t])``.

    ``response_mask`` is True at the response tokens themselves (never at column 0, which has no
    prediction). Any hooks active on ``model`` apply; gradients flow to whatever they add. Scored with
    :func:`interp_steer.scoring.completion_logprobs` (float64 sums; the unembedding is recomputed in the
    backward pass instead of keeping ``d_vocab`` logits per response token).
    """
    if response_mask[:, 0].any():
        raise DataFormatError("response_mask is True at column 0, which no position predicts; prompts must be non-empty")
    residual = model(tokens, attention_mask=attention_mask, stop_at_layer=model.cfg.n_layers)
    return completion_logprobs(model, residual, tokens, response_mask).logprob


def pair_logprobs(model: HookedTransformer, batch: PreferenceBatch) -> Float[Tensor, "n_pairs 2"]:
    """``[:, 0]`` = log p(positive | prompt), ``[:, 1]`` = log p(negative | prompt), summed over response tokens."""
    sums = response_logprob_sums(model, batch.padded.tokens, batch.padded.attention_mask, batch.response_mask)
    return torch.stack([sums[: batch.n_pairs], sums[batch.n_pairs:]], dim=1)
