"""circuitsvis views of a free-text sample (prompt + both completions), with and without steering.

* :func:`free_text_attention_views` — at one layer, the attention rows of the first completion tokens over the
  whole sequence per head (clean, steered, steered − clean) as coloured tokens, and the full head patterns over
  the last ``window`` tokens, clean and steered; for the positive and the negative completion.
* :func:`free_text_projection_view` — per token of each sequence, the residual stream's projection on the unit
  steering vector at chosen layers, clean and steered.

Combine them with :func:`interp_steer.viz.views.standalone_page` (offline HTML, the library inlined once).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from transformer_lens import HookedTransformer

from interp_steer.analysis.readout import sample_sequences
from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.tokenization import pad_token_id
from interp_steer.errors import ConfigError
from interp_steer.steering.apply import steer
from interp_steer.steering.vector import SteeringVector
from interp_steer.viz.views import _rounded


def _caches(model: HookedTransformer, vector: SteeringVector, pair: ContrastivePair, multiplier: float, names: set[str]):
    if pair.kind != "free_text":
        raise ConfigError(f"pair {pair.id!r} is {pair.kind!r}: these views are for free-text pairs")
    vector = vector.select()
    vector.check_fits(model)
    vector = vector.to(model.cfg.device, dtype=model.cfg.dtype)
    seqs = sample_sequences(model.tokenizer, pair)
    batch = seqs.batch(1, pad_token_id(model.tokenizer)).to(model.cfg.device)
    start = batch.absolute([seqs.steer_from] * 2)
    _, clean = model.run_with_cache(batch.tokens, attention_mask=batch.attention_mask, names_filter=lambda n: n in names)
    with steer(model, vector, multiplier=float(multiplier), positions=start):
        _, steered = model.run_with_cache(batch.tokens, attention_mask=batch.attention_mask, names_filter=lambda n: n in names)
    return vector, seqs, batch, clean, steered


def _labels(model: HookedTransformer, ids: Sequence[int]) -> list[str]:
    tokenizer: Any = model.tokenizer
    return [str(tokenizer.decode([i])) for i in ids]


@torch.inference_mode()
def free_text_attention_views(
    model: HookedTransformer, vector: SteeringVector, pair: ContrastivePair, layer: int, *,
    multiplier: float = 1.0, first_tokens: int = 3, window: int = 48,
) -> list[tuple[str, object]]:
    """``(heading, view)`` pairs per completion (positive, negative): attention rows of the first
    ``first_tokens`` completion tokens per head (clean, steered, Δ), then full patterns clean and steered."""
    import circuitsvis as cv

    if not 0 <= layer < model.cfg.n_layers:
        raise ConfigError(f"layer={layer} out of range for a {model.cfg.n_layers}-layer model")
    if first_tokens < 1 or window < 2:
        raise ConfigError(f"first_tokens must be ≥ 1 and window ≥ 2, got {first_tokens} and {window}")
    name = f"blocks.{layer}.attn.hook_pattern"
    _, seqs, batch, clean, steered = _caches(model, vector, pair, multiplier, {name})
    views: list[tuple[str, object]] = []
    heads = range(model.cfg.n_heads)
    for side, row in enumerate(seqs.rows):
        off = int(batch.offsets[side])
        tokens = _labels(model, row.ids)
        clean_p = clean[name][side, :, off:, off:]
        steered_p = steered[name][side, :, off:, off:]
        assert row.score_from is not None
        queries = list(range(row.score_from, min(row.score_from + first_tokens, len(row.ids))))
        mean_clean, mean_steered = clean_p[:, queries].mean(1), steered_p[:, queries].mean(1)  # [head, key]
        values = torch.cat([mean_clean.T, mean_steered.T, (mean_steered - mean_clean).T], dim=1)
        labels = [f"L{layer}H{h} {cond}" for cond in ("clean", "steered", "Δ") for h in heads]
        completion = "positive" if side == 0 else "negative"
        views.append((f"{completion} completion: attention from its first {len(queries)} tokens, layer {layer} "
                      "(per head: clean, steered, steered − clean)",
                      cv.tokens.colored_tokens_multi(tokens=tokens, values=torch.tensor(_rounded(values)), labels=labels)))
        lo = max(0, len(tokens) - window)
        for condition, pattern in (("clean", clean_p), (f"steered ×{multiplier:g}", steered_p)):
            views.append((f"{completion} completion: layer {layer} attention patterns, {condition} (last {len(tokens) - lo} tokens)",
                          cv.attention.attention_heads(attention=_rounded(pattern[:, lo:, lo:]), tokens=tokens[lo:],
                                                       attention_head_names=[f"L{layer}H{h}" for h in heads])))
    return views


@torch.inference_mode()
def free_text_projection_view(
    model: HookedTransformer, vector: SteeringVector, pair: ContrastivePair, layers: Sequence[int], *,
    multiplier: float = 1.0,
) -> list[tuple[str, object]]:
    """Per completion, ``(heading, view)``: each token's residual stream (``resid_post``) at ``layers`` projected
    on the unit steering vector, clean and steered."""
    import circuitsvis as cv

    bad = [layer for layer in layers if not 0 <= layer < model.cfg.n_layers]
    if bad or not layers:
        raise ConfigError(f"layers {list(layers)}: need at least one layer in 0..{model.cfg.n_layers - 1}")
    names = {f"blocks.{layer}.hook_resid_post" for layer in layers}
    vec, seqs, batch, clean, steered = _caches(model, vector, pair, multiplier, names)
    unit = vec.directions[vec.hook_names[0]].float()
    unit = unit / unit.norm()
    views: list[tuple[str, object]] = []
    for side, row in enumerate(seqs.rows):
        off = int(batch.offsets[side])
        columns, labels = [], []
        for layer in layers:
            for condition, cache in (("clean", clean), ("steered", steered)):
                columns.append(cache[f"blocks.{layer}.hook_resid_post"][side, off:].float() @ unit)
                labels.append(f"L{layer} {condition}")
        values = torch.tensor(_rounded(torch.stack(columns, dim=1)))
        completion = "positive" if side == 0 else "negative"
        views.append((f"{completion} completion: projection of the residual stream on the unit steering vector per token",
                      cv.tokens.colored_tokens_multi(tokens=_labels(model, row.ids), values=values, labels=labels)))
    return views
