"""What steering costs: side-effect metrics of a steering vector at a layer and multiplier.

Per item (a neutral passage, an A/B sample, a generation) and multiplier, as tidy tables:

* :func:`neutral_side_effects` — on the neutral corpus (:func:`~interp_steer.data.neutral.load_neutral_corpus`),
  steering at **every** position:

  - ``kl``: mean over the passage's positions of KL(unsteered ‖ steered) of the next-token distribution,
    ``Σ_v p_u(v) (log p_u(v) − log p_s(v))``, with the log-softmax and the sum in float64;
  - ``dnll``: the model's own greedy *unsteered* continuation of the passage (:func:`prepare_neutral`), its mean
    per-token negative log-likelihood under steering minus that without steering (how much less likely steering
    makes the model's normal text), in nats per token.

  The same function compares a *prompted* model instead of a steered one (``prefix_ids``: a system prompt or
  persona sentence put before every passage), so the prompting baseline has the same cost metrics.
* :func:`answer_scores` — for A/B pairs, steering from the last prompt token on (as the propensity engines do):
  ``logit_diff`` (positive − negative letter), ``correct`` (``logit_diff > 0``; on the capability sets the positive
  letter is the correct one) and ``format_mass = p(A) + p(B)`` at the answer position (does the model still answer
  in the format at all?).
* :func:`generation_side_effects` — steered greedy generations (:func:`~interp_steer.steering.generate_batch`):
  ``repetition_rate`` (share of repeated 4-grams, ``1 − distinct-4``, Welleck et al.'s seq-rep-4),
  ``distinct_1`` / ``distinct_2`` (unique n-grams / n-grams, over token ids) and ``unsteered_ppl`` (the unsteered
  model's perplexity of the generated tokens given the prompt).

:func:`summarize` turns per-item tables into means with percentile-bootstrap 95% confidence intervals
(resampling items; :func:`interp_steer.stats.intervals.mean_interval`). Multipliers are recorded with their units (:mod:`interp_steer.evaluation.units`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from interp_steer.data.neutral import NeutralPassage, load_neutral_corpus
from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.tokenization import encode_sequence, encode_text, left_pad, pad_token_id, sequence_start_ids
from interp_steer.errors import ConfigError, DataFormatError
from interp_steer.evaluation.propensity import scoring_rows
from interp_steer.scoring import final_logits
from interp_steer.stats.intervals import mean_interval
from interp_steer.steering.apply import steer
from interp_steer.steering.generation import generate_batch
from interp_steer.steering.hook_names import layer_of
from interp_steer.steering.vector import SteeringVector

REPETITION_N = 4
"""n of the repeated-n-gram rate (seq-rep-4)."""


# ----------------------------------------------------------------------------- summaries
def summarize(per_item: pd.DataFrame, metrics: Sequence[str], by: Sequence[str], *, n_boot: int = 2000,
              level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """One row per group of ``by``: for each metric ``m`` its mean ``m`` and bootstrap interval ``m_lo`` /
    ``m_hi`` over the group's items, plus ``n_items``."""
    missing = [c for c in [*metrics, *by] if c not in per_item.columns]
    if missing:
        raise ConfigError(f"summarize: missing columns {missing}; got {list(per_item.columns)}")
    records = []
    for key, group in per_item.groupby(list(by), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        rec = dict(zip(by, key))
        rec["n_items"] = len(group)
        for m in metrics:
            mean, lo, hi = mean_interval(group[m], n_boot=n_boot, confidence=level, seed=seed)
            rec.update({m: mean, f"{m}_lo": lo, f"{m}_hi": hi})
        records.append(rec)
    return pd.DataFrame.from_records(records)


# ----------------------------------------------------------------------------- neutral corpus
@dataclass(frozen=True)
class NeutralSet:
    """Tokenised neutral passages and the model's greedy unsteered continuation of each (token ids)."""

    passage_ids: tuple[str, ...]
    tokens: tuple[tuple[int, ...], ...]
    continuations: tuple[tuple[int, ...], ...]

    def __len__(self) -> int:
        return len(self.tokens)


def prepare_neutral(model: HookedTransformer, passages: Sequence[NeutralPassage] | None = None, *, n: int | None = None,
                    continuation_tokens: int = 16, batch_size: int = 16) -> NeutralSet:
    """Tokenise neutral passages (default: the shipped corpus, ``n`` of them register-interleaved) and generate
    each one's greedy unsteered continuation of up to ``continuation_tokens`` tokens (0: none, so no ΔNLL).

    Passages are tokenised without special tokens, as :func:`~interp_steer.steering.generate_batch` tokenises its
    prompts; the continuation text is re-tokenised the same way."""
    if getattr(model, "tokenizer", None) is None:
        raise ConfigError("the model has no tokenizer attached; load it with interp_steer.models.load_model")
    if continuation_tokens < 0:
        raise ConfigError(f"continuation_tokens must be ≥ 0, got {continuation_tokens}")
    passages = list(passages) if passages is not None else load_neutral_corpus(limit=n)
    if n is not None:
        passages = passages[:n]
    if not passages:
        raise ConfigError("no neutral passages: pass at least one")
    tok = model.tokenizer
    tokens = [encode_sequence(tok, p.text) for p in passages]
    if continuation_tokens == 0:
        conts: list[tuple[int, ...]] = [()] * len(passages)
    else:
        conts = []
        for lo in range(0, len(passages), batch_size):
            texts = generate_batch(model, [p.text for p in passages[lo:lo + batch_size]], None, 0.0,
                                   max_new_tokens=continuation_tokens)
            conts += [encode_text(tok, t)[:continuation_tokens] if t else () for t in texts]
    return NeutralSet(tuple(p.id for p in passages), tuple(tokens), tuple(conts))


def _read_logprobs(model: HookedTransformer, final: Tensor, offsets: Tensor, read_from: Sequence[int],
                   read_len: Sequence[int]) -> list[Tensor]:
    out = []
    for row, (start, length) in enumerate(zip(read_from, read_len)):
        lo = int(offsets[row]) + start
        logits = final_logits(model, final[row, lo:lo + length])
        out.append(torch.log_softmax(logits.double(), dim=-1))
    return out


def _resumable_layer(vector: SteeringVector | None) -> int | None:
    """The layer ``L`` if ``vector`` is one ``blocks.L.hook_resid_post`` direction (steering it at every position
    is then ``resid_L + m·v`` fed to blocks ``L+1…``), else ``None``."""
    if vector is None or len(vector.hook_names) != 1 or not vector.hook_names[0].endswith(".hook_resid_post"):
        return None
    return layer_of(vector.hook_names[0])


def _logprob_pieces(model: HookedTransformer, seqs: Sequence[Sequence[int]], read_from: Sequence[int],
                    read_len: Sequence[int], vector: SteeringVector | None, multiplier: float,
                    *, keep_layer: int | None = None, kept: dict | None = None) -> list[Tensor]:
    """Per sequence, the float64 next-token log-probabilities ``[read_len, d_vocab]`` at positions
    ``read_from .. read_from + read_len − 1`` (relative to the row's first token), steered at all positions.

    ``keep_layer``: also store the (unsteered) ``blocks.L.hook_resid_post`` and the batch in ``kept``."""
    batch = left_pad(seqs, pad_token_id(model.tokenizer)).to(model.cfg.device)
    hooks: list[tuple[str | Callable[..., Any], Callable[..., Any]]] = []
    if keep_layer is not None and kept is not None:
        kept["batch"] = batch
        hooks.append((f"blocks.{keep_layer}.hook_resid_post", lambda act, hook: kept.__setitem__("resid", act)))
    with model.hooks(fwd_hooks=hooks):
        if vector is not None and multiplier != 0.0:
            with steer(model, vector, multiplier=float(multiplier), positions="all"):
                final = model(batch.tokens, attention_mask=batch.attention_mask, stop_at_layer=model.cfg.n_layers)
        else:
            final = model(batch.tokens, attention_mask=batch.attention_mask, stop_at_layer=model.cfg.n_layers)
    return _read_logprobs(model, final, batch.offsets, read_from, read_len)


def _resumed_pieces(model: HookedTransformer, kept: dict, layer: int, direction: Tensor, multiplier: float,
                    read_from: Sequence[int], read_len: Sequence[int]) -> list[Tensor]:
    """:func:`_logprob_pieces` of a resid_post vector from the kept unsteered residual at ``layer``: only blocks
    ``layer+1…`` are run (the layers below are unaffected by steering)."""
    batch = kept["batch"]
    resid = kept["resid"] + float(multiplier) * direction
    final = model(resid, start_at_layer=layer + 1, stop_at_layer=model.cfg.n_layers,
                  attention_mask=batch.attention_mask) if layer + 1 < model.cfg.n_layers else resid
    return _read_logprobs(model, final, batch.offsets, read_from, read_len)


def _kl_rows(ref: Float[Tensor, "n d_vocab"], other: Float[Tensor, "n d_vocab"]) -> Float[Tensor, "n"]:
    """KL(ref ‖ other) per row from float64 log-probabilities."""
    return (ref.exp() * (ref - other)).sum(-1)


@torch.inference_mode()
def neutral_side_effects(
    model: HookedTransformer,
    neutral: NeutralSet,
    vector: SteeringVector | None,
    multipliers: Sequence[float],
    *,
    prefix_ids: Sequence[int] | None = None,
    batch_size: int = 8,
) -> pd.DataFrame:
    """``kl`` and ``dnll`` per (passage, multiplier) (see the module docstring), steering ``multiplier × vector``
    at every position of ``passage + continuation``.

    With ``prefix_ids`` the compared model is the *prompted* one: those tokens are put before every passage
    (``vector`` may then be ``None``, and ``multipliers`` ``[0.0]``) and the distributions at the passage's own
    positions are compared with the unprompted ones. Columns: ``passage_id, multiplier, kl, dnll, n_kl_tokens,
    n_continuation_tokens, nll_unsteered, nll_steered`` (NLLs per continuation token; ``dnll`` NaN without one).
    """
    if len(multipliers) == 0:
        raise ConfigError("no multipliers: pass e.g. multipliers=[0, 1, 2]")
    if vector is None and not prefix_ids and any(float(m) != 0.0 for m in multipliers):
        raise ConfigError("neutral_side_effects: multipliers other than 0 need a vector")
    if vector is not None:
        vector.check_fits(model)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be ≥ 1, got {batch_size}")
    prefix = tuple(prefix_ids or ())
    records = []
    for lo in range(0, len(neutral), batch_size):
        idx = range(lo, min(lo + batch_size, len(neutral)))
        seqs = [neutral.tokens[i] + neutral.continuations[i] for i in idx]
        n_kl = [len(neutral.tokens[i]) for i in idx]
        n_cont = [len(neutral.continuations[i]) for i in idx]
        read_len = [k + max(c - 1, 0) for k, c in zip(n_kl, n_cont)]
        resume = None if prefix else _resumable_layer(vector)
        kept: dict = {}
        reference = _logprob_pieces(model, seqs, [0] * len(seqs), read_len, None, 0.0, keep_layer=resume, kept=kept)
        for m in multipliers:
            if resume is not None:
                assert vector is not None  # a resumable layer comes from a vector
                direction = vector.directions[vector.hook_names[0]].to(model.cfg.device, model.cfg.dtype)
                compared = _resumed_pieces(model, kept, resume, direction, float(m), [0] * len(seqs), read_len)
            else:
                compared_seqs = [_prompted(model.tokenizer, prefix, s) for s in seqs] if prefix else seqs
                compared = _logprob_pieces(model, compared_seqs, [len(prefix)] * len(seqs), read_len, vector, float(m))
            for j, i in enumerate(idx):
                ref, cmp_ = reference[j], compared[j]
                kl = _kl_rows(ref[: n_kl[j]], cmp_[: n_kl[j]]).mean().item()
                rec = {"passage_id": neutral.passage_ids[i], "multiplier": float(m), "kl": kl,
                       "n_kl_tokens": n_kl[j], "n_continuation_tokens": n_cont[j],
                       "nll_unsteered": np.nan, "nll_steered": np.nan, "dnll": np.nan}
                if n_cont[j]:
                    targets = torch.tensor(neutral.continuations[i], device=ref.device)[:, None]
                    rows = slice(n_kl[j] - 1, n_kl[j] - 1 + n_cont[j])
                    nll_u = -ref[rows].gather(1, targets)[:, 0].mean().item()
                    nll_s = -cmp_[rows].gather(1, targets)[:, 0].mean().item()
                    rec.update(nll_unsteered=nll_u, nll_steered=nll_s, dnll=nll_s - nll_u)
                records.append(rec)
    return pd.DataFrame.from_records(records)


def _prompted(tokenizer, prefix: tuple[int, ...], seq: tuple[int, ...]) -> tuple[int, ...]:
    """``prefix`` put before a passage, after the model's sequence start (``<bos> prefix passage``, not ``prefix <bos>
    passage``); the passage's own positions then sit ``len(prefix)`` later than in the unprompted sequence."""
    start = sequence_start_ids(tokenizer)
    if start and seq[:len(start)] == start:
        return start + prefix + seq[len(start):]
    return prefix + seq


# ----------------------------------------------------------------------------- A/B answers
@torch.inference_mode()
def answer_scores(
    model: HookedTransformer,
    pairs: Sequence[ContrastivePair],
    vector: SteeringVector | None,
    multipliers: Sequence[float],
    *,
    batch_size: int = 16,
) -> pd.DataFrame:
    """Per (A/B pair, multiplier): ``logit_diff``, ``correct`` (``logit_diff > 0``), ``format_mass`` (``p(pos letter)
    + p(neg letter)`` at the answer position, i.e. p(A) + p(B)) and ``pos_prob``, steering from the last prompt token
    on. Columns also: ``sample_id, dataset, multiplier, is_A``."""
    if not pairs:
        raise ConfigError("answer_scores: no pairs")
    bad = [p.id for p in pairs if p.kind != "ab"]
    if bad:
        raise DataFormatError(f"answer_scores needs A/B pairs; pair {bad[0]!r} is {pairs[0].kind!r}")
    if vector is None and any(float(m) != 0.0 for m in multipliers):
        raise ConfigError("answer_scores: multipliers other than 0 need a vector")
    if vector is not None:
        vector.check_fits(model)
    rows = scoring_rows(model.tokenizer, pairs, n_ctx=model.cfg.n_ctx)
    expanded = [(row, float(m)) for row in rows for m in multipliers]
    pad = pad_token_id(model.tokenizer)
    records = []
    for lo in range(0, len(expanded), batch_size):
        chunk = expanded[lo:lo + batch_size]
        batch = left_pad([r.ids for r, _ in chunk], pad).to(model.cfg.device)
        mults = torch.tensor([m for _, m in chunk], dtype=model.cfg.dtype, device=model.cfg.device)
        if vector is not None and bool((mults != 0).any()):
            start = batch.absolute([r.steer_from for r, _ in chunk])
            with steer(model, vector, multiplier=mults, positions=start):
                final = model(batch.tokens, attention_mask=batch.attention_mask, stop_at_layer=model.cfg.n_layers)
        else:
            final = model(batch.tokens, attention_mask=batch.attention_mask, stop_at_layer=model.cfg.n_layers)
        logp = torch.log_softmax(final_logits(model, final[:, -1]).double(), dim=-1)
        letters = torch.tensor([r.letters for r, _ in chunk], device=logp.device)
        pair_lp = logp.gather(1, letters)
        for (row, m), (lp_pos, lp_neg) in zip(chunk, pair_lp.tolist()):
            pair = pairs[row.sample]
            diff = lp_pos - lp_neg
            records.append({"sample_id": pair.id or str(row.sample), "dataset": pair.dataset, "multiplier": m,
                            "is_A": pair.is_A, "logit_diff": diff, "correct": float(diff > 0),
                            "pos_prob": 1.0 / (1.0 + np.exp(-diff)),
                            "format_mass": float(np.exp(lp_pos) + np.exp(lp_neg))})
    return pd.DataFrame.from_records(records)


# ----------------------------------------------------------------------------- generations
def distinct_n(tokens: Sequence, n: int) -> float:
    """Unique n-grams / n-grams of ``tokens`` (NaN if it has fewer than ``n`` tokens)."""
    if n < 1:
        raise ConfigError(f"distinct_n: n must be ≥ 1, got {n}")
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def repetition_rate(tokens: Sequence, n: int = REPETITION_N) -> float:
    """Share of the n-grams of ``tokens`` that repeat an earlier one: ``1 − distinct_n(tokens, n)`` (seq-rep-n)."""
    value = distinct_n(tokens, n)
    return 1.0 - value if value == value else float("nan")


@torch.inference_mode()
def _unsteered_nll(model: HookedTransformer, prompt_ids: Sequence[Sequence[int]], gen_ids: Sequence[Sequence[int]],
                   batch_size: int) -> list[float]:
    """Mean per-token NLL of each ``gen_ids[i]`` given ``prompt_ids[i]`` under the unsteered model (NaN if empty)."""
    out = []
    for lo in range(0, len(gen_ids), batch_size):
        prompts, gens = prompt_ids[lo:lo + batch_size], gen_ids[lo:lo + batch_size]
        keep = [j for j, g in enumerate(gens) if g]
        values = [float("nan")] * len(gens)
        if keep:
            pieces = _logprob_pieces(model, [tuple(prompts[j]) + tuple(gens[j]) for j in keep],
                                     [len(prompts[j]) - 1 for j in keep], [len(gens[j]) for j in keep], None, 0.0)
            for j, logp in zip(keep, pieces):
                targets = torch.tensor(gens[j], device=logp.device)[:, None]
                values[j] = -logp.gather(1, targets)[:, 0].mean().item()
        out += values
    return out


def generation_side_effects(
    model: HookedTransformer,
    prompts: Sequence[str],
    vector: SteeringVector | None,
    multipliers: Sequence[float],
    *,
    max_new_tokens: int = 32,
    batch_size: int = 16,
) -> pd.DataFrame:
    """Greedy generations of every prompt (already templated) at every multiplier, in batched KV-cached loops,
    with ``repetition_rate``, ``distinct_1``, ``distinct_2``, ``unsteered_nll`` (per token) and ``unsteered_ppl``
    of the generated tokens (re-tokenised text). Columns also ``prompt_index, multiplier, text, n_tokens``."""
    if not prompts:
        raise ConfigError("generation_side_effects: no prompts")
    if vector is None and any(float(m) != 0.0 for m in multipliers):
        raise ConfigError("generation_side_effects: multipliers other than 0 need a vector")
    jobs = [(i, float(m)) for i in range(len(prompts)) for m in multipliers]
    texts: list[str] = []
    for lo in range(0, len(jobs), batch_size):
        chunk = jobs[lo:lo + batch_size]
        texts += generate_batch(model, [prompts[i] for i, _ in chunk], vector, [m for _, m in chunk],
                                max_new_tokens=max_new_tokens)
    tok = model.tokenizer
    gen_ids = [encode_text(tok, t) for t in texts]
    prompt_ids = [encode_sequence(tok, prompts[i]) for i, _ in jobs]
    nll = _unsteered_nll(model, prompt_ids, gen_ids, batch_size)
    records = []
    for (i, m), text, ids, value in zip(jobs, texts, gen_ids, nll):
        records.append({"prompt_index": i, "multiplier": m, "text": text, "n_tokens": len(ids),
                        "repetition_rate": repetition_rate(ids), "distinct_1": distinct_n(ids, 1),
                        "distinct_2": distinct_n(ids, 2), "unsteered_nll": value,
                        "unsteered_ppl": float(np.exp(value)) if value == value else float("nan")})
    return pd.DataFrame.from_records(records)


def vector_layer(vector: SteeringVector | None) -> int | None:
    """The layer of a single-hook vector (``None`` for no vector)."""
    return None if vector is None else layer_of(vector.select().hook_names[0])
