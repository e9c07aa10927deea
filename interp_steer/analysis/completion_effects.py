"""Direct effect and logit lens of a steering vector on free-text completion tokens.

The metric is the engine's free-text propensity: summed log-prob of the positive completion minus that of the
negative one (:mod:`interp_steer.analysis.readout`). For one pair, the clean run is unsteered and the steered
run adds ``multiplier × v`` from the last prompt token on.

* :func:`completion_token_effects` — one row per scored token (side ``pos``/``neg``): its log-prob clean,
  steered and *direct* (the clean final residual plus ``multiplier × v`` at the steered positions, read through
  ``ln_final`` + ``W_U``: the vector's effect if no layer after it reacted), and ``vector_logit`` = the linear
  push of ``v`` on that token's logit through ``ln_final`` linearised at the clean run (weight / clean scale).
* :func:`completion_direct_effects` — per pair: ``total_per_unit`` (steered − clean metric, per unit
  multiplier), ``direct_per_unit`` (direct − clean, per unit) and their ratio.
* :func:`completion_logit_lens` — per layer, the metric read from that layer's ``resid_post`` (its own norm
  scale) in the clean and the steered run, and their difference.
* :func:`vector_top_tokens` — the tokens whose unembedding the vector raises or lowers most (through the
  final norm's weight).
"""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from interp_steer.analysis.readout import sample_sequences
from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.tokenization import PaddedBatch, pad_token_id
from interp_steer.errors import ConfigError
from interp_steer.scoring import CompletionScores, completion_logprobs
from interp_steer.steering.apply import steer
from interp_steer.steering.vector import SteeringVector


def _free_text_check(pair: ContrastivePair) -> None:
    if pair.kind != "free_text":
        raise ConfigError(f"pair {pair.id!r} is {pair.kind!r}: completion effects need free-text pairs")


def _runs(model: HookedTransformer, vector: SteeringVector, pair: ContrastivePair, multiplier: float, names: set[str]):
    """Left-padded (pos, neg) batch, score mask, steering start and clean/steered caches of ``names``."""
    _free_text_check(pair)
    vector = vector.select()
    vector.check_fits(model)
    vector = vector.to(model.cfg.device, dtype=model.cfg.dtype)
    seqs = sample_sequences(model.tokenizer, pair)
    batch: PaddedBatch = seqs.batch(1, pad_token_id(model.tokenizer)).to(model.cfg.device)
    first = batch.offsets + torch.tensor([r.score_from for r in seqs.rows], device=batch.offsets.device)
    mask = torch.arange(batch.width, device=first.device)[None, :] >= first[:, None]
    start = batch.absolute([seqs.steer_from] * len(seqs.rows))
    _, clean = model.run_with_cache(batch.tokens, attention_mask=batch.attention_mask, names_filter=lambda n: n in names)
    with steer(model, vector, multiplier=float(multiplier), positions=start):
        _, steered = model.run_with_cache(batch.tokens, attention_mask=batch.attention_mask, names_filter=lambda n: n in names)
    return vector, seqs, batch, mask, start, clean, steered


def _scores(model: HookedTransformer, residual: Tensor, batch: PaddedBatch, mask: Tensor) -> CompletionScores:
    return completion_logprobs(model, residual, batch.tokens, mask, per_token=True)


def _final_scale(model: HookedTransformer, cache, name: str = "ln_final.hook_scale") -> Tensor | None:
    if model.cfg.normalization_type is None or name not in cache:
        return None
    return cache[name][..., 0].float()  # [batch, pos]


@torch.inference_mode()
def completion_token_effects(
    model: HookedTransformer, vector: SteeringVector, pair: ContrastivePair, *, multiplier: float = 1.0
) -> pd.DataFrame:
    """One row per scored completion token (see module doc): ``sample_id, side, position, token, logprob_clean,
    logprob_steered, logprob_direct, vector_logit``."""
    if multiplier == 0:
        raise ConfigError("completion_token_effects: multiplier must be non-zero")
    last = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    vector, seqs, batch, mask, start, clean, steered = _runs(model, vector, pair, multiplier, {last, "ln_final.hook_scale"})
    direction = vector.directions[vector.hook_names[0]]
    steered_positions = torch.arange(batch.width, device=start.device)[None, :] >= start[:, None]
    direct_final = clean[last] + float(multiplier) * steered_positions[..., None].to(direction.dtype) * direction
    scored = {name: _scores(model, resid, batch, mask) for name, resid in
              (("clean", clean[last]), ("steered", steered[last]), ("direct", direct_final))}
    # the linear push of v on each target's logit, through ln_final at the clean run's scale
    predicting = mask[:, 1:]
    targets = batch.tokens[:, 1:][predicting]
    weight = getattr(model.ln_final, "w", None)
    pushed = direction.float()
    if model.cfg.normalization_type in ("LN", "LNPre"):
        pushed = pushed - pushed.mean()
    if weight is not None:
        pushed = pushed * weight.float()
    scale = _final_scale(model, clean)
    per_position = (pushed @ model.W_U.float())[targets]
    if scale is not None:
        per_position = per_position / scale[:, :-1][predicting]
    rows = scored["clean"].rows
    assert rows is not None
    tokenizer: Any = model.tokenizer
    labels = [str(tokenizer.decode([int(t)])) for t in targets.tolist()]
    positions = torch.nonzero(predicting)[:, 1] + 1 - batch.offsets[rows]
    frame = pd.DataFrame({
        "sample_id": pair.id, "side": ["pos" if int(r) == 0 else "neg" for r in rows.tolist()],
        "position": positions.cpu().numpy(), "token": labels,
        **{f"logprob_{k}": v.token_logprobs.cpu().numpy() for k, v in scored.items() if v.token_logprobs is not None},
        "vector_logit": per_position.cpu().numpy(),
    })
    return frame


def completion_direct_effects(
    model: HookedTransformer, vector: SteeringVector, pairs: Sequence[ContrastivePair], *, multiplier: float = 1.0
) -> pd.DataFrame:
    """Per pair: ``metric_clean, metric_steered, metric_direct, total_per_unit, direct_per_unit, direct_share``
    (direct / total), and the summed ``vector_logit`` difference pos − neg (the linear direct push per unit)."""
    records = []
    for pair in pairs:
        tokens = completion_token_effects(model, vector, pair, multiplier=multiplier)
        sums = tokens.groupby("side")[["logprob_clean", "logprob_steered", "logprob_direct", "vector_logit"]].sum()
        diff = sums.loc["pos"] - sums.loc["neg"]
        total = (diff["logprob_steered"] - diff["logprob_clean"]) / multiplier
        direct = (diff["logprob_direct"] - diff["logprob_clean"]) / multiplier
        records.append({
            "sample_id": pair.id, "dataset": pair.dataset, "multiplier": float(multiplier),
            "metric_clean": float(diff["logprob_clean"]), "metric_steered": float(diff["logprob_steered"]),
            "metric_direct": float(diff["logprob_direct"]),
            "total_per_unit": float(total), "direct_per_unit": float(direct),
            "direct_share": float(direct / total) if abs(total) > 1e-12 else float("nan"),
            "vector_logit_diff": float(diff["vector_logit"]),
        })
    return pd.DataFrame.from_records(records)


@torch.inference_mode()
def completion_logit_lens(
    model: HookedTransformer, vector: SteeringVector, pair: ContrastivePair, *, multiplier: float = 1.0
) -> pd.DataFrame:
    """The free-text metric read from each layer's ``resid_post``: columns ``sample_id, layer, condition,
    metric`` with ``condition`` in clean / steered / ``steered − clean``."""
    names = {f"blocks.{layer}.hook_resid_post" for layer in range(model.cfg.n_layers)}
    _, _, batch, mask, _, clean, steered = _runs(model, vector, pair, multiplier, names)
    records: list[dict[str, Any]] = []
    for layer in range(model.cfg.n_layers):
        name = f"blocks.{layer}.hook_resid_post"
        values = {}
        for condition, cache in (("clean", clean), ("steered", steered)):
            totals = _scores(model, cache[name], batch, mask).logprob
            values[condition] = float(totals[0] - totals[1])
        values["steered − clean"] = values["steered"] - values["clean"]
        records.extend({"sample_id": pair.id, "layer": layer, "condition": c, "metric": v} for c, v in values.items())
    return pd.DataFrame.from_records(records)


def vector_top_tokens(model: HookedTransformer, vector: SteeringVector, *, k: int = 10) -> pd.DataFrame:
    """The ``k`` tokens the vector raises most and the ``k`` it lowers most: ``(w_ln ⊙ v) · W_U[:, t]``
    (mean-centred first for LayerNorm). Columns ``direction`` (raised/lowered), ``rank``, ``token_id``,
    ``token``, ``logit``."""
    if k < 1:
        raise ConfigError(f"k must be ≥ 1, got {k}")
    vector = vector.select()
    vector.check_fits(model)
    direction: Float[Tensor, "d_model"] = vector.directions[vector.hook_names[0]].to(model.cfg.device).float()
    if model.cfg.normalization_type in ("LN", "LNPre"):
        direction = direction - direction.mean()
    weight = getattr(model.ln_final, "w", None)
    if weight is not None:
        direction = direction * weight.float()
    logits = direction @ model.W_U.float()
    tokenizer: Any = model.tokenizer
    records: list[dict[str, Any]] = []
    for label, largest in (("raised", True), ("lowered", False)):
        values, ids = torch.topk(logits, k, largest=largest)
        for rank, (value, token) in enumerate(zip(values.tolist(), ids.tolist())):
            records.append({"direction": label, "rank": rank, "token_id": token,
                            "token": str(tokenizer.decode([token])), "logit": value})
    return pd.DataFrame.from_records(records)
