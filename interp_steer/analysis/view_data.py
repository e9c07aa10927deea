"""What the circuitsvis views of one sample show, computed from the model: per-token value columns and attention
patterns, clean and steered, as plain data (:class:`TokenValues`, :class:`HeadPatterns`). The views in
:mod:`interp_steer.viz.views` draw them without touching the model.

* :func:`attention_views` — at one layer, the answer position's attention row per head (clean, steered, Δ) and the
  full head patterns over the last ``window`` tokens, clean and steered (A/B or free-text answer readout);
* :func:`projection_view` — per token, the projection of each chosen layer's residual stream on the unit steering
  vector (clean and steered), and optionally chosen SAE latents;
* :func:`free_text_attention_views` / :func:`free_text_projection_view` — the same for a free-text pair's two
  completions (prompt + each completion), per completion.

Each returns ``(heading, data)`` pairs; the input of the first two is the pair's answer readout
(:func:`~interp_steer.analysis.readout.answer_readout`); steering starts at the last prompt token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, Union

import torch
from transformer_lens import HookedTransformer

from interp_steer.analysis.readout import clean_and_steered_caches, sample_sequences
from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.tokenization import pad_token_id
from interp_steer.errors import ConfigError
from interp_steer.steering.apply import steer
from interp_steer.steering.vector import SteeringVector


@dataclass(frozen=True)
class TokenValues:
    """Coloured tokens: ``values[token, column]`` with one label per column (``colored_tokens_multi``)."""

    tokens: list[str]
    values: torch.Tensor
    labels: list[str]


@dataclass(frozen=True)
class HeadPatterns:
    """Attention patterns ``attention[head, query, key]`` over ``tokens`` (``attention_heads``)."""

    attention: torch.Tensor
    tokens: list[str]
    head_names: list[str]


ViewData = Union[TokenValues, HeadPatterns]


def _rounded_tensor(tensor: torch.Tensor, digits: int = 4) -> torch.Tensor:
    """Rounded float32 on the CPU: keeps the page's inlined JSON small."""
    return torch.round(tensor.float().cpu(), decimals=digits)


def token_labels(model: HookedTransformer, ids: Sequence[int]) -> list[str]:
    """Each token id decoded on its own (the labels of every view)."""
    tokenizer: Any = model.tokenizer
    if tokenizer is None:
        raise ConfigError("the model has no tokenizer attached; load it with interp_steer.models.load_model")
    return [str(tokenizer.decode([i])) for i in ids]


@torch.inference_mode()
def attention_views(
    model: HookedTransformer,
    vector: SteeringVector,
    pair: ContrastivePair,
    layer: int,
    *,
    multiplier: float = 1.0,
    window: int = 40,
) -> list[tuple[str, ViewData]]:
    """``(heading, view)`` pairs: the answer row per head, then full head patterns clean and steered."""
    if not 0 <= layer < model.cfg.n_layers:
        raise ConfigError(f"layer={layer} out of range for a {model.cfg.n_layers}-layer model")
    if window < 2:
        raise ConfigError(f"window must be ≥ 2, got {window}")
    vector = vector.select()
    name = f"blocks.{layer}.attn.hook_pattern"
    readout, clean, steered = clean_and_steered_caches(model, vector, pair, multiplier, {name})
    tokens = token_labels(model, readout.ids)
    clean_pattern, steered_pattern = clean[name][0], steered[name][0]  # [head, query, key]
    heads = range(model.cfg.n_heads)
    answer_rows = torch.cat([clean_pattern[:, -1].T, steered_pattern[:, -1].T, (steered_pattern - clean_pattern)[:, -1].T], dim=1)
    labels = [f"L{layer}H{h} {cond}" for cond in ("clean", "steered", "Δ") for h in heads]
    views: list[tuple[str, ViewData]] = [(
        f"Attention from the answer position, layer {layer} (per head: clean, steered, steered − clean)",
              TokenValues(tokens=tokens, values=_rounded_tensor(answer_rows), labels=labels))]
    lo = max(0, len(tokens) - window)
    head_names = [f"L{layer}H{h}" for h in heads]
    for condition, pattern in (("clean", clean_pattern), (f"steered ×{multiplier:g}", steered_pattern)):
        views.append((f"Layer {layer} attention patterns, {condition} (last {len(tokens) - lo} tokens)",
                      HeadPatterns(attention=_rounded_tensor(pattern[:, lo:, lo:]), tokens=tokens[lo:],
                                   head_names=head_names)))
    return views


@torch.inference_mode()
def projection_view(
    model: HookedTransformer,
    vector: SteeringVector,
    pair: ContrastivePair,
    layers: Sequence[int],
    *,
    multiplier: float = 1.0,
    sae=None,
    sae_features: Sequence[int] = (),
    sae_hook_name: str | None = None,
) -> tuple[str, ViewData]:
    """``(heading, view)``: per-token projection on the unit vector at ``layers`` (clean, steered) and SAE latents."""
    vector = vector.select()
    bad = [layer for layer in layers if not 0 <= layer < model.cfg.n_layers]
    if bad or not layers:
        raise ConfigError(f"layers {list(layers)}: need at least one layer in 0..{model.cfg.n_layers - 1}")
    unit = vector.directions[vector.hook_names[0]].float().to(model.cfg.device)
    unit = unit / unit.norm()
    names = {f"blocks.{layer}.hook_resid_post" for layer in layers}
    if sae is not None and sae_features:
        sae_hook_name = sae_hook_name or getattr(getattr(sae.cfg, "metadata", None), "hook_name", None)
        if sae_hook_name not in model.hook_dict:
            raise ConfigError(f"sae_hook_name {sae_hook_name!r} is not a hook of the model")
        names.add(sae_hook_name)
    readout, clean, steered = clean_and_steered_caches(model, vector, pair, multiplier, names)
    columns, labels = [], []
    for layer in layers:
        for condition, cache in (("clean", clean), ("steered", steered)):
            columns.append(cache[f"blocks.{layer}.hook_resid_post"][0].float() @ unit)
            labels.append(f"L{layer} proj {condition}")
    if sae is not None and sae_features:
        for condition, cache in (("clean", clean), ("steered", steered)):
            latents = sae.encode(cache[sae_hook_name][0].float()).float()
            for feature in sae_features:
                columns.append(latents[:, int(feature)])
                labels.append(f"SAE {feature} {condition}")
    values = _rounded_tensor(torch.stack(columns, dim=1))
    view = TokenValues(tokens=token_labels(model, readout.ids), values=values, labels=labels)
    return "Projection of the residual stream on the steering vector (and SAE latents) per token", view


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


@torch.inference_mode()
def free_text_attention_views(
    model: HookedTransformer, vector: SteeringVector, pair: ContrastivePair, layer: int, *,
    multiplier: float = 1.0, first_tokens: int = 3, window: int = 48,
) -> list[tuple[str, ViewData]]:
    """``(heading, view)`` pairs per completion (positive, negative): attention rows of the first
    ``first_tokens`` completion tokens per head (clean, steered, Δ), then full patterns clean and steered."""
    if not 0 <= layer < model.cfg.n_layers:
        raise ConfigError(f"layer={layer} out of range for a {model.cfg.n_layers}-layer model")
    if first_tokens < 1 or window < 2:
        raise ConfigError(f"first_tokens must be ≥ 1 and window ≥ 2, got {first_tokens} and {window}")
    name = f"blocks.{layer}.attn.hook_pattern"
    _, seqs, batch, clean, steered = _caches(model, vector, pair, multiplier, {name})
    views: list[tuple[str, ViewData]] = []
    heads = range(model.cfg.n_heads)
    for side, row in enumerate(seqs.rows):
        off = int(batch.offsets[side])
        tokens = token_labels(model, row.ids)
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
                      TokenValues(tokens=tokens, values=_rounded_tensor(values), labels=labels)))
        lo = max(0, len(tokens) - window)
        for condition, pattern in (("clean", clean_p), (f"steered ×{multiplier:g}", steered_p)):
            views.append((f"{completion} completion: layer {layer} attention patterns, {condition} (last {len(tokens) - lo} tokens)",
                          HeadPatterns(attention=_rounded_tensor(pattern[:, lo:, lo:]), tokens=tokens[lo:],
                                       head_names=[f"L{layer}H{h}" for h in heads])))
    return views


@torch.inference_mode()
def free_text_projection_view(
    model: HookedTransformer, vector: SteeringVector, pair: ContrastivePair, layers: Sequence[int], *,
    multiplier: float = 1.0,
) -> list[tuple[str, ViewData]]:
    """Per completion, ``(heading, view)``: each token's residual stream (``resid_post``) at ``layers`` projected
    on the unit steering vector, clean and steered."""
    bad = [layer for layer in layers if not 0 <= layer < model.cfg.n_layers]
    if bad or not layers:
        raise ConfigError(f"layers {list(layers)}: need at least one layer in 0..{model.cfg.n_layers - 1}")
    names = {f"blocks.{layer}.hook_resid_post" for layer in layers}
    vec, seqs, batch, clean, steered = _caches(model, vector, pair, multiplier, names)
    unit = vec.directions[vec.hook_names[0]].float()
    unit = unit / unit.norm()
    views: list[tuple[str, ViewData]] = []
    for side, row in enumerate(seqs.rows):
        off = int(batch.offsets[side])
        columns, labels = [], []
        for layer in layers:
            for condition, cache in (("clean", clean), ("steered", steered)):
                columns.append(cache[f"blocks.{layer}.hook_resid_post"][side, off:].float() @ unit)
                labels.append(f"L{layer} {condition}")
        values = _rounded_tensor(torch.stack(columns, dim=1))
        completion = "positive" if side == 0 else "negative"
        views.append((f"{completion} completion: projection of the residual stream on the unit steering vector per token",
                      TokenValues(tokens=token_labels(model, row.ids), values=values, labels=labels)))
    return views
