"""Reading scores off a model's final residual stream: final norm, unembedding, answer letters, completion log-probs.

This is the one place where the package turns residual vectors into the numbers it reports:

* :func:`final_logits` — ``ln_final`` + unembedding (+ the model's output soft-cap) of selected positions only.
* :func:`answer_letter_scores` — for A/B prompts, the logits of just the positive and negative answer-letter tokens
  (two columns of ``W_U``), returned as :class:`LetterScores` (``logit_diff``, ``logprob_diff``, ``pos_prob``).
* :func:`token_logprobs`, :func:`gathered_completion_logprobs`, :func:`completion_logprobs` — log-probabilities of
  given target tokens, summed per completion into :class:`CompletionScores`.
* :func:`target_logprobs`, :func:`letter_scores_from_logits` — the same rules applied to full logits a caller
  already has (the naive reference engine and the SAE cross-entropy use the model's own forward).

Who uses it: the propensity engines (:func:`interp_steer.evaluation.compute_propensities`,
:func:`interp_steer.evaluation.naive_propensities`, :func:`interp_steer.evaluation.fast_engine.fast_propensities`),
BiPO's response log-probs (:mod:`interp_steer.methods.response_logprobs`, with gradients), the analyses' readout,
patching, direct-effect and logit-lens code (:mod:`interp_steer.analysis.readout`,
:mod:`interp_steer.analysis.direct_effect`) and the SAE cross-entropy metrics (:mod:`interp_steer.sae.metrics`).

Numerics. A log-probability is computed as ``gathered logit − logsumexp(logits)`` with the reduction in float64:
the logits themselves come out of the model's own matmul in its dtype and are cast up only for the reduction.
A float32 ``log_softmax`` over a 49k-token vocabulary is biased on some CPU builds by ~1.6e-5 nats per token, always
with the same sign, which adds up over long completions (≈1.7e-3 over 134 tokens); the float64 reduction stays
within ~1e-6 per completion of a full float64 reference. Without gradients, :func:`token_logprobs` builds the
logits in blocks of positions × vocabulary columns and reduces each block in float32 (max, exp, a sum of ≤ 1024
terms) before combining the blocks in float64 — within ~1e-7 nats per token of the float64 reduction and several
times cheaper than casting every logit up. With gradients, full-vocabulary logits are built a piece of positions
at a time (``max_logits`` elements at most) and each piece is recomputed in the backward pass (activation
checkpointing) instead of kept; memory does not grow with vocabulary × sequence length either way.

The unembedding is done with the model's ``W_U``/``b_U`` directly, so hooks on ``unembed.hook_in``/``hook_out``
are not run; ``ln_final`` is the model's module, so its hook points are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from torch.utils.checkpoint import checkpoint
from transformer_lens import HookedTransformer
from transformer_lens.utilities import apply_softcap

from interp_steer.errors import ConfigError, DataFormatError

DEFAULT_MAX_LOGITS = 2**23
"""Most full-vocabulary logits built at once (positions per piece = this // d_vocab; 8M floats ≈ 32 MB in float32)."""


# ----------------------------------------------------------------------------- residual → logits
def normalized_final_residual(model: HookedTransformer, residual: Float[Tensor, "n d_model"]) -> Float[Tensor, "n d_model"]:
    """The final residual vectors after the model's ``ln_final`` (unchanged if the model has no final norm)."""
    if model.cfg.normalization_type is None:
        return residual
    return model.ln_final(residual[:, None, :])[:, 0, :]


def soft_cap(model: HookedTransformer, logits: Tensor) -> Tensor:
    """``cap · tanh(logits / cap)`` with the model's ``cfg.output_logits_soft_cap`` where it is > 0, else ``logits``."""
    return apply_softcap(logits, getattr(model.cfg, "output_logits_soft_cap", None))


def _unembed(model: HookedTransformer, normed: Float[Tensor, "n d_model"]) -> Float[Tensor, "n d_vocab"]:
    # W_U is [d_model, d_vocab]: one matmul, without TransformerLens's Unembed (which copies W_U.T on every call)
    return soft_cap(model, torch.addmm(model.b_U, normed, model.W_U))


def final_logits(model: HookedTransformer, residual: Float[Tensor, "n d_model"]) -> Float[Tensor, "n d_vocab"]:
    """``ln_final`` + unembedding (+ soft cap) of gathered final-residual vectors (only the positions to score).

    The same logits ``model(tokens)`` gives at those positions, at least in float32."""
    logits = _unembed(model, normalized_final_residual(model, residual))
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


# ----------------------------------------------------------------------------- answer letters
@dataclass(frozen=True)
class LetterScore:
    """The :class:`LetterScores` of one row, as Python floats."""

    logit_diff: float
    logprob_diff: float
    pos_prob: float


@dataclass(frozen=True)
class LetterScores:
    """Scores of a positive vs a negative answer-letter token at one position per row (float64, ``[n]`` each).

    ``logit_diff = logit(pos) − logit(neg)`` (the A/B propensity); ``logprob_diff = log p(pos) − log p(neg)``, equal
    to ``logit_diff`` because the softmax normaliser cancels (kept as its own column of the tables);
    ``pos_prob = p(pos) / (p(pos) + p(neg)) = sigmoid(logit_diff)``.
    """

    logit_diff: Float[Tensor, "n"]
    logprob_diff: Float[Tensor, "n"]
    pos_prob: Float[Tensor, "n"]

    def per_row(self) -> list[LetterScore]:
        """One :class:`LetterScore` per row, in row order."""
        columns = zip(self.logit_diff.tolist(), self.logprob_diff.tolist(), self.pos_prob.tolist())
        return [LetterScore(*values) for values in columns]


def letter_logits(
    model: HookedTransformer, residual: Float[Tensor, "n d_model"], letters: Int[Tensor, "n 2"]
) -> Float[Tensor, "n 2"]:
    """Logits (after the soft cap) of just the tokens ``letters[i] = (pos, neg)`` at each residual vector:
    two columns of ``W_U`` per row instead of the whole vocabulary."""
    if letters.ndim != 2 or letters.shape[1] != 2 or letters.shape[0] != residual.shape[0]:
        raise ConfigError(f"letters must be [{residual.shape[0]}, 2] token ids, got shape {tuple(letters.shape)}")
    letters = letters.to(residual.device)
    columns = model.W_U.T[letters]  # [n, 2, d_model]
    normed = normalized_final_residual(model, residual)
    logits = torch.einsum("nkd,nd->nk", columns, normed.to(columns.dtype)) + model.b_U[letters]
    return soft_cap(model, logits)


def answer_letter_scores(
    model: HookedTransformer, residual: Float[Tensor, "n d_model"], letters: Int[Tensor, "n 2"]
) -> LetterScores:
    """:class:`LetterScores` of the (positive, negative) letter pairs ``letters`` at the final residual vectors
    ``residual`` (one per row: the position whose next token is the answer letter)."""
    return _letter_scores(letter_logits(model, residual, letters))


def letter_scores_from_logits(logits: Float[Tensor, "n d_vocab"], letters: Int[Tensor, "n 2"]) -> LetterScores:
    """:class:`LetterScores` from full-vocabulary logits a caller already has (e.g. ``model(tokens)[:, -1]``)."""
    if letters.ndim != 2 or letters.shape[1] != 2 or letters.shape[0] != logits.shape[0]:
        raise ConfigError(f"letters must be [{logits.shape[0]}, 2] token ids, got shape {tuple(letters.shape)}")
    return _letter_scores(logits.gather(1, letters.to(logits.device)))


def _letter_scores(pair_logits: Float[Tensor, "n 2"]) -> LetterScores:
    wide = pair_logits.double()
    diff = wide[:, 0] - wide[:, 1]
    return LetterScores(logit_diff=diff, logprob_diff=diff, pos_prob=torch.sigmoid(diff))


# ----------------------------------------------------------------------------- completion log-probs
@dataclass(frozen=True)
class CompletionScores:
    """Summed log-probabilities of scored tokens, per row (float64).

    ``logprob[r]`` is the sum over row ``r``'s scored tokens of ``log p(token | everything before it)``; rows
    without scored tokens get 0. With ``per_token=True`` the scorer also returns each scored token's log-prob in
    ``token_logprobs`` and its row in ``rows`` (same order as the targets were given, or row-major for a mask).
    """

    logprob: Float[Tensor, "rows"]
    token_logprobs: Float[Tensor, "n_tokens"] | None = None
    rows: Int[Tensor, "n_tokens"] | None = None


def _gathered_minus_logsumexp(logits: Tensor, targets: Tensor) -> Tensor:
    wide = logits.double()
    return wide.gather(1, targets[:, None])[:, 0] - torch.logsumexp(wide, dim=-1)


def target_logprobs(
    logits: Float[Tensor, "n d_vocab"], targets: Int[Tensor, "n"], *, max_logits: int = DEFAULT_MAX_LOGITS
) -> Float[Tensor, "n"]:
    """``log softmax(logits)[i, targets[i]]`` as gathered logit − logsumexp, reduced in float64 (``max_logits``
    elements cast up at a time)."""
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        raise ConfigError(f"target_logprobs: logits must be [n, d_vocab] and targets [n], got {tuple(logits.shape)} and {tuple(targets.shape)}")
    targets = targets.to(logits.device)
    step = max(1, max_logits // max(1, logits.shape[1]))
    pieces = [_gathered_minus_logsumexp(logits[lo: lo + step], targets[lo: lo + step]) for lo in range(0, logits.shape[0], step)]
    return torch.cat(pieces) if pieces else logits.new_zeros(0, dtype=torch.float64)


def _piece_logprobs(model: HookedTransformer, normed: Tensor, targets: Tensor) -> Tensor:
    return _gathered_minus_logsumexp(_unembed(model, normed), targets)


VOCAB_BLOCK = 1024
"""Vocabulary columns per block of the no-gradient scorer (:func:`_blocked_logprobs`)."""


def _blocked_logprobs(model: HookedTransformer, normed: Tensor, targets: Tensor, block: int) -> Tensor:
    """``log p(targets)`` from normalised final residuals, unembedding ``block`` vocabulary columns at a time
    (no gradients). Each block's logits (float32 or wider) give their max ``m_b`` and ``s_b = Σ exp(logit − m_b)``
    (≤ ``block`` terms summed in that dtype); the blocks are combined in float64,
    ``logsumexp = M + log Σ_b s_b·exp(m_b − M)``. Small blocks keep the matmul output in cache and avoid casting
    every logit to float64; the result stays within ~1e-7 nats per token of a float64 log-softmax of the same logits."""
    w_u, b_u = model.W_U, model.b_U
    n, vocab = normed.shape[0], w_u.shape[1]
    target_logit = torch.zeros(n, dtype=torch.float64, device=normed.device)
    maxes, sums = [], []
    for lo in range(0, vocab, block):
        hi = min(vocab, lo + block)
        logits = soft_cap(model, torch.addmm(b_u[lo:hi], normed, w_u[:, lo:hi]))
        if logits.dtype not in (torch.float32, torch.float64):
            logits = logits.float()
        top = logits.amax(dim=-1, keepdim=True)
        maxes.append(top[:, 0])
        sums.append((logits - top).exp_().sum(dim=-1))
        inside = ((targets >= lo) & (targets < hi)).nonzero()[:, 0]
        if inside.numel():
            target_logit[inside] = logits[inside, targets[inside] - lo].double()
    block_max, block_sum = torch.stack(maxes, dim=1).double(), torch.stack(sums, dim=1).double()
    overall = block_max.amax(dim=1, keepdim=True)
    return target_logit - (overall[:, 0] + (block_sum * (block_max - overall).exp()).sum(dim=1).log())


def token_logprobs(
    model: HookedTransformer,
    residual: Float[Tensor, "n d_model"],
    targets: Int[Tensor, "n"],
    *,
    max_logits: int = DEFAULT_MAX_LOGITS,
) -> Float[Tensor, "n"]:
    """``log p(targets[i])`` read from the final residual vector ``residual[i]`` (float64).

    Without gradients the logits are built in blocks of at most ``VOCAB_BLOCK`` positions × ``VOCAB_BLOCK``
    vocabulary columns (and ``max_logits`` elements) and reduced block by block (:func:`_blocked_logprobs`). If
    gradients are enabled and ``residual`` requires them, full-vocabulary logits are built ``max_logits // d_vocab``
    positions at a time and each piece is recomputed in the backward pass rather than stored."""
    if residual.shape[0] != targets.shape[0]:
        raise ConfigError(f"token_logprobs: {residual.shape[0]} residual vectors but {targets.shape[0]} targets")
    if max_logits < 1:
        raise ConfigError(f"max_logits must be ≥ 1, got {max_logits}")
    targets = targets.to(residual.device)
    normed = normalized_final_residual(model, residual)
    grad = torch.is_grad_enabled() and normed.requires_grad
    if not grad:
        # pieces of ≤ VOCAB_BLOCK positions × ≤ VOCAB_BLOCK vocabulary columns (fewer if max_logits is smaller)
        positions = max(1, min(VOCAB_BLOCK, max_logits))
        block = max(1, min(VOCAB_BLOCK, max_logits // positions))
        pieces = [_blocked_logprobs(model, normed[lo: lo + positions], targets[lo: lo + positions], block)
                  for lo in range(0, normed.shape[0], positions)]
        return torch.cat(pieces) if pieces else normed.new_zeros(0, dtype=torch.float64)
    step = max(1, max_logits // model.cfg.d_vocab_out)
    out = []
    for lo in range(0, normed.shape[0], step):
        piece, target = normed[lo: lo + step], targets[lo: lo + step]
        if grad:
            out.append(checkpoint(_piece_logprobs, model, piece, target, use_reentrant=False))
        else:
            out.append(_piece_logprobs(model, piece, target))
    return torch.cat(out) if out else normed.new_zeros(0, dtype=torch.float64)


def gathered_completion_logprobs(
    model: HookedTransformer,
    residual: Float[Tensor, "n d_model"],
    targets: Int[Tensor, "n"],
    rows: Int[Tensor, "n"],
    n_rows: int,
    *,
    per_token: bool = False,
    max_logits: int = DEFAULT_MAX_LOGITS,
) -> CompletionScores:
    """Per-row sums of :func:`token_logprobs`: entry ``i`` (residual vector predicting ``targets[i]``) counts
    toward completion ``rows[i]`` of ``n_rows``."""
    logprobs = token_logprobs(model, residual, targets, max_logits=max_logits)
    rows = rows.to(logprobs.device)
    totals = torch.zeros(n_rows, dtype=logprobs.dtype, device=logprobs.device).index_add(0, rows, logprobs)
    return CompletionScores(totals, logprobs if per_token else None, rows if per_token else None)


def completion_logprobs(
    model: HookedTransformer,
    final: Float[Tensor, "batch pos d_model"],
    tokens: Int[Tensor, "batch pos"],
    score_mask: Bool[Tensor, "batch pos"],
    *,
    per_token: bool = False,
    max_logits: int = DEFAULT_MAX_LOGITS,
) -> CompletionScores:
    """Per row, the summed ``log p(tokens[r, t] | tokens[r, :t])`` over the positions ``t`` where ``score_mask`` is
    True, read from the final residual ``final`` of the same (padded) batch: token ``t`` is predicted at ``t − 1``.

    ``score_mask`` marks the scored tokens themselves, so it must be False in column 0 (nothing predicts it)."""
    if score_mask.shape != tokens.shape or final.shape[:2] != tokens.shape:
        raise ConfigError(
            f"completion_logprobs: final {tuple(final.shape)}, tokens {tuple(tokens.shape)} and score_mask "
            f"{tuple(score_mask.shape)} must share [batch, pos]"
        )
    if score_mask[:, 0].any():
        raise DataFormatError("score_mask is True in column 0, which no position predicts; every scored row needs a prefix")
    target_mask = score_mask[:, 1:].to(final.device)
    rows = torch.arange(tokens.shape[0], device=final.device)[:, None].expand_as(target_mask)[target_mask]
    return gathered_completion_logprobs(
        model, final[:, :-1][target_mask], tokens[:, 1:].to(final.device)[target_mask], rows, tokens.shape[0],
        per_token=per_token, max_logits=max_logits,
    )
