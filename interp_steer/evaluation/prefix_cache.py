"""Shared-prefix key/value caches for the fast propensity engine.

Everything before the first steered token (the last prompt token) is computed without steering, so it is the same
for every multiplier and every steered layer. :func:`build_prefix_cache` runs those prefixes once (left-padded, one
forward) and keeps TransformerLens's per-layer keys and values; :meth:`PrefixCache.select` hands out a frozen
``TransformerLensKeyValueCache`` whose rows are any selection (with repeats) of the prefixes, so one prefix can serve
the positive and negative completion of a free-text pair and every multiplier at once.

The suffixes that run on top of a cache are right-padded (:func:`right_pad`): the prefix is left-padded and the
suffix right-padded, so the concatenated attention mask ``[prefix mask | suffix mask]`` keeps every real token
contiguous and TransformerLens's mask-derived positions (rotary or learned) equal those of the unpadded sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry
from transformer_lens.utilities import apply_softcap

from interp_steer.data.tokenization import left_pad


@dataclass
class PrefixCache:
    """Keys and values of ``n_prefix`` left-padded prefixes at every layer, plus their attention mask."""

    keys: list[Float[Tensor, "n_prefix prefix_pos n_kv_heads d_head"]]
    values: list[Float[Tensor, "n_prefix prefix_pos n_kv_heads d_head"]]
    attention_mask: Int[Tensor, "n_prefix prefix_pos"]

    @property
    def width(self) -> int:
        return self.attention_mask.shape[1]

    def select(self, index: Int[Tensor, "rows"], from_layer: int = 0) -> TransformerLensKeyValueCache:
        """A frozen cache whose row ``r`` is prefix ``index[r]``.

        Layers below ``from_layer`` get empty placeholder entries (for forwards that use ``start_at_layer``,
        which never reads them), which saves copying the keys and values of layers that will not run.
        """
        entries = []
        for layer, (keys, values) in enumerate(zip(self.keys, self.values)):
            if layer < from_layer:
                empty = keys.new_empty((index.shape[0], 0, *keys.shape[2:]))
                entries.append(TransformerLensKeyValueCacheEntry(empty, empty, frozen=True))
            else:
                entries.append(TransformerLensKeyValueCacheEntry(
                    keys.index_select(0, index), values.index_select(0, index), frozen=True
                ))
        return TransformerLensKeyValueCache(entries, self.attention_mask.index_select(0, index), frozen=True)


def build_prefix_cache(
    model: HookedTransformer, prefixes: Sequence[Sequence[int]], pad_id: int, device: str | torch.device
) -> PrefixCache:
    """Run the (unsteered) ``prefixes`` once, left-padded, and keep their keys and values at every layer."""
    cfg = model.cfg
    n_kv_heads = cfg.n_key_value_heads or cfg.n_heads
    if max(len(p) for p in prefixes) == 0:
        empty = torch.empty((len(prefixes), 0, n_kv_heads, cfg.d_head), dtype=cfg.dtype, device=device)
        mask = torch.empty((len(prefixes), 0), dtype=torch.long, device=device)
        return PrefixCache([empty] * cfg.n_layers, [empty] * cfg.n_layers, mask)
    batch = left_pad(prefixes, pad_id).to(device)
    cache = TransformerLensKeyValueCache.init_cache(cfg, device, len(prefixes))
    # stop_at_layer=n_layers runs every block (so every layer's keys and values are cached) but skips the unembed
    model(batch.tokens, attention_mask=batch.attention_mask, past_kv_cache=cache, stop_at_layer=cfg.n_layers)
    return PrefixCache(
        [entry.past_keys for entry in cache.entries],
        [entry.past_values for entry in cache.entries],
        batch.attention_mask,
    )


@dataclass
class RightPadded:
    """Right-padded suffix tokens: ``lengths[i]`` real tokens at the start of row ``i``."""

    tokens: Int[Tensor, "rows pos"]
    attention_mask: Int[Tensor, "rows pos"]
    lengths: Int[Tensor, "rows"]


def right_pad(sequences: Sequence[Sequence[int]], pad_id: int, device: str | torch.device) -> RightPadded:
    """Stack non-empty id sequences with right padding (the layout that continues a left-padded prefix)."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    width = int(lengths.max())
    tokens = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for row, seq in enumerate(sequences):
        tokens[row, : len(seq)] = torch.tensor(list(seq), dtype=torch.long)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    return RightPadded(tokens.to(device), mask.to(device), lengths.to(device))


# ----------------------------------------------------------------------------- suffix block on a shared prefix
def supports_shared_prefix_block(model: HookedTransformer) -> bool:
    """Whether :func:`shared_prefix_block` reproduces ``model``'s blocks: sequential or parallel (GPT-J/NeoX)
    attention + MLP, or attention only; pre-norms, with or without the norms after attention and MLP of Gemma 2/3
    (``use_normalization_before_and_after``); per-head QK-norm; local (sliding-window) and global layers with their
    own rotary tables; attention-score soft-capping; rotary or learned absolute positions. Not covered (TransformerLens's
    own block with a per-row key/value copy runs instead): OLMo-style post-norm and full-vector QK-norm, QKV clipping,
    attention sinks, log-n or dynamic-NTK scaling, split / per-head / 4-bit inputs, per-head results, ungrouped GQA."""
    cfg = model.cfg
    from transformer_lens.components.transformer_block import POST_NORM_ARCHITECTURES

    unsupported = (
        cfg.positional_embedding_type not in ("rotary", "standard"),
        cfg.use_split_qkv_input, cfg.use_attn_in, cfg.load_in_4bit,
        cfg.clip_qkv is not None, cfg.use_logn_attn, cfg.use_attention_sinks,
        cfg.use_dynamic_ntk_rope, cfg.attention_dir != "causal",
        cfg.original_architecture in POST_NORM_ARCHITECTURES, bool(cfg.ungroup_grouped_query_attention),
        getattr(cfg, "use_attn_result", False),
        # OLMo's QK-norm over the whole projected vector (applied outside calculate_qkv_matrices)
        not cfg.use_qk_norm and getattr(model.blocks[0].attn, "q_norm", None) is not None,
    )
    return not any(unsupported)


def position_ids(attention_mask: Int[Tensor, "n pos"]) -> Int[Tensor, "n pos"]:
    """TransformerLens's positions of a padded batch: ``cumsum(mask) − 1``, clamped at 0 (left pads get 0)."""
    return (attention_mask.cumsum(dim=1) - 1).clamp_min(0)


def rotate(attn, x: Float[Tensor, "n pos heads d_head"], positions: Int[Tensor, "n pos"]) -> Float[Tensor, "n pos heads d_head"]:
    """TransformerLens's rotary embedding of ``x`` at explicit ``positions`` (same tables and pairing as
    ``AbstractAttention.apply_rotary``; each attention module has its own tables, e.g. Gemma's local rotary base)."""
    needed = int(positions.max()) + 1 if positions.numel() else 0
    if needed > attn.rotary_cos.shape[0]:
        attn._extend_rotary_embeddings(min(attn.cfg.n_ctx, max(needed, 2 * attn.rotary_cos.shape[0])))
    rotary_dim = attn.cfg.rotary_dim
    cos = attn.rotary_cos[positions][:, :, None, :]
    sin = attn.rotary_sin[positions][:, :, None, :]
    x_rot, x_pass = x[..., :rotary_dim], x[..., rotary_dim:]
    return torch.cat([x_rot * cos + attn.rotate_every_two(x_rot) * sin, x_pass], dim=-1)


@dataclass
class BlockPrefix:
    """One block's cached prefix keys (rotated) and values for the ``R`` rows of a chunk, laid out for batched
    matmuls: ``keys [R, kv_heads, d_head, prefix_pos]``, ``values [R, kv_heads, prefix_pos, d_head]``; the keys'
    mask (real tokens) and positions (for local attention windows)."""

    keys: Float[Tensor, "R kv d_head prefix_pos"]
    values: Float[Tensor, "R kv prefix_pos d_head"]
    key_mask: Bool[Tensor, "R prefix_pos"]
    key_positions: Int[Tensor, "R prefix_pos"]


def block_prefix(model: HookedTransformer, cache: PrefixCache, block_index: int, row_prefix: Int[Tensor, "R"]) -> BlockPrefix:
    """The prefix keys/values of block ``block_index`` for chunk rows using prefixes ``row_prefix`` (rotated once
    here, at the prefix's own positions, instead of once per steered row and call). TransformerLens caches keys
    after QK-norm and before the rotary embedding, so they are rotated with this block's own tables."""
    keys, values = cache.keys[block_index], cache.values[block_index]
    positions = position_ids(cache.attention_mask)
    if model.cfg.positional_embedding_type == "rotary" and keys.shape[1] > 0:
        keys = rotate(model.blocks[block_index].attn, keys, positions)
    return BlockPrefix(
        keys.index_select(0, row_prefix).permute(0, 2, 3, 1).contiguous(),
        values.index_select(0, row_prefix).permute(0, 2, 1, 3).contiguous(),
        cache.attention_mask.index_select(0, row_prefix).bool(),
        positions.index_select(0, row_prefix),
    )


def _qkv_weight(attn) -> tuple[Tensor, Tensor, int]:
    """Fused ``[(heads + 2·kv_heads)·d_head, d_model]`` projection (and bias) of one attention module."""
    grouped = hasattr(attn, "_W_K")
    w_k, w_v = (attn._W_K, attn._W_V) if grouped else (attn.W_K, attn.W_V)
    b_k, b_v = (attn._b_K, attn._b_V) if grouped else (attn.b_K, attn.b_V)
    as_rows = lambda w: w.permute(0, 2, 1).reshape(-1, w.shape[1])  # noqa: E731  [h, d_model, d_head] → [h·d_head, d_model]
    weight = torch.cat([as_rows(attn.W_Q), as_rows(w_k), as_rows(w_v)])
    bias = torch.cat([attn.b_Q.reshape(-1), b_k.reshape(-1), b_v.reshape(-1)])
    return weight, bias, w_k.shape[0]


def _projections(attn, normed: Float[Tensor, "T d_model"]) -> tuple[Tensor, Tensor, Tensor]:
    """Queries ``[T, heads, d_head]``, keys and values ``[T, kv, d_head]`` of real suffix tokens, with TransformerLens's
    per-head QK-norm (``calculate_qkv_matrices``: after the projection, before the rotary embedding)."""
    cfg = attn.cfg
    weight, bias, kv = _qkv_weight(attn)
    qkv = F.linear(normed, weight, bias)
    q, k, v = qkv.split([cfg.n_heads * cfg.d_head, kv * cfg.d_head, kv * cfg.d_head], dim=-1)
    if cfg.use_qk_norm:
        q, k = attn.q_norm(q.reshape(-1, cfg.d_head)), attn.k_norm(k.reshape(-1, cfg.d_head))
    t = normed.shape[0]
    return q.reshape(t, cfg.n_heads, cfg.d_head), k.reshape(t, kv, cfg.d_head), v.reshape(t, kv, cfg.d_head)


def _scatter(values: Tensor, index: Tensor | None, total: int) -> Tensor:
    """Rows of the real tokens back into all ``total`` row-tokens (padding rows: zeros)."""
    if index is None:
        return values
    return values.new_zeros(total, *values.shape[1:]).index_copy_(0, index, values)


def shared_prefix_block(
    model: HookedTransformer,
    block_index: int,
    x: Float[Tensor, "N S d_model"],
    prefix: BlockPrefix,
    suffix_positions: Int[Tensor, "R S"],
    suffix_valid: Bool[Tensor, "R S"],
    n_mult: int,
) -> Float[Tensor, "N S d_model"]:
    """Block ``block_index`` on steered suffix rows that share their chunk row's prefix cache.

    Rows of ``x`` are ordered ``(group, chunk row, multiplier)`` with ``R`` chunk rows and ``n_mult`` multipliers
    per group (groups: the steered layers of a staircase). Queries of all groups and multipliers of one chunk row
    meet that row's prefix keys in one batched matmul (``[R, kv_heads]`` batches, no per-row copy, no grouped-query
    expansion); the suffix attends to itself causally. ``suffix_positions`` are the suffix tokens' positions (for
    rotary and local windows), ``suffix_valid`` marks real (not padding) suffix tokens; the per-token parts (norms,
    projections, QK-norm, MLP) run on those only and padding positions come back as zeros. At real positions the
    same result as TransformerLens's ``TransformerBlock`` with a cache entry of the prefix (within float rounding);
    check :func:`supports_shared_prefix_block` first.
    """
    block, cfg = model.blocks[block_index], model.cfg
    n, s, _ = x.shape
    r = prefix.keys.shape[0]
    g = n // (r * n_mult)
    # the per-token parts run on the real suffix tokens only, not on the padding
    real = suffix_valid[None, :, None, :].expand(g, r, n_mult, s).reshape(n * s)
    index = None if bool(real.all()) else real.nonzero()[:, 0]
    tokens = x.reshape(n * s, -1) if index is None else x.reshape(n * s, -1).index_select(0, index)
    q, k, v = (_scatter(t, index, n * s).reshape(n, s, *t.shape[1:]) for t in _projections(block.attn, block.ln1(tokens[None])[0]))
    if cfg.positional_embedding_type == "rotary":
        positions = suffix_positions[None, :, None, :].expand(g, r, n_mult, s).reshape(n, s)
        q, k = rotate(block.attn, q, positions), rotate(block.attn, k, positions)
    z = _shared_attention(block.attn, q, k, v, prefix, suffix_positions, suffix_valid, n_mult)
    if index is not None:
        z = z.index_select(0, index)
    w_o = block.attn.W_O.permute(2, 0, 1).reshape(cfg.d_model, -1)  # a view under the F.linear layout
    attn_out = F.linear(z, w_o, block.attn.b_O)
    if cfg.use_normalization_before_and_after:
        attn_out = block.ln1_post(attn_out[None])[0]
    resid_mid = tokens + attn_out
    if cfg.attn_only:
        out = resid_mid
    else:
        mlp_out = block.mlp(block.ln2((tokens if cfg.parallel_attn_mlp else resid_mid)[None]))  # parallel: reads resid_pre
        if cfg.use_normalization_before_and_after:
            mlp_out = block.ln2_post(mlp_out)
        out = resid_mid + mlp_out[0]
    return _scatter(out, index, n * s).reshape(n, s, -1)


def _window_mask(window: int, key_positions: Tensor, query_positions: Tensor) -> Tensor:
    """``key > query − window`` (TransformerLens's ``_make_causal_mask`` for a local-attention layer). TransformerLens
    compares indices of the concatenated [left-padded prefix | right-padded suffix]; real tokens are contiguous in
    that layout, so index differences equal position differences."""
    return key_positions > query_positions - window


def _shared_attention(
    attn, q: Float[Tensor, "N S heads d_head"], k: Float[Tensor, "N S kv d_head"], v: Float[Tensor, "N S kv d_head"],
    prefix: BlockPrefix, suffix_positions: Int[Tensor, "R S"], suffix_valid: Bool[Tensor, "R S"], n_mult: int,
) -> Float[Tensor, "NS hd"]:
    """Attention of the suffix queries over [their row's prefix keys | the suffix keys]: ``z`` of every row-token,
    ``[N·S, heads·d_head]`` (rows of ``q`` ordered ``(group, chunk row, multiplier)``)."""
    n, s, heads, d_head = q.shape
    kv, r = k.shape[2], prefix.keys.shape[0]
    g, per = n // (r * n_mult), heads // kv
    # queries in "prefix layout" [R, kv, (group, mult, pos, head-in-group), d_head]
    q_pre = q.reshape(g, r, n_mult, s, kv, per, d_head).permute(1, 4, 0, 2, 3, 5, 6).reshape(r, kv, -1, d_head)
    scores_pre = torch.matmul(q_pre, prefix.keys) / attn.attn_scale  # [R, kv, G·M·S·per, P]
    # suffix-on-suffix scores per row, [N, kv, per·S, S], moved to the prefix layout
    q_row = q.reshape(n, s, kv, per, d_head).permute(0, 2, 3, 1, 4).reshape(n, kv, per * s, d_head)
    scores_suf = torch.matmul(q_row, k.permute(0, 2, 3, 1)) / attn.attn_scale
    scores_suf = scores_suf.reshape(g, r, n_mult, kv, per, s, s).permute(1, 3, 0, 2, 5, 4, 6)  # [R,kv,G,M,Sq,per,Sk]
    causal = torch.ones(s, s, dtype=torch.bool, device=q.device).tril()
    suf_mask = causal[None, None, None, None, :, None, :] & suffix_valid[:, None, None, None, None, None, :]
    pre_mask = prefix.key_mask[:, None, None, :]  # [R, 1, 1, P]
    if attn.attn_type == "local":  # sliding window: keys more than window − 1 positions back are masked
        window = attn.cfg.window_size
        window_pre = _window_mask(window, prefix.key_positions[:, None, :], suffix_positions[:, :, None])  # [R, Sq, P]
        window_suf = _window_mask(window, suffix_positions[:, None, :], suffix_positions[:, :, None])  # [R, Sq, Sk]
        suf_mask = suf_mask & window_suf[:, None, None, None, :, None, :]
        pre_mask = (prefix.key_mask[:, None, :] & window_pre)[:, None, None, :, None, :]  # [R, 1, 1, Sq, 1, P]
        scores_pre = scores_pre.reshape(r, kv, g * n_mult, s, per, -1)
    cap = attn.cfg.attn_scores_soft_cap
    if cap is not None and cap > 0:
        scores_pre, scores_suf = apply_softcap(scores_pre, cap), apply_softcap(scores_suf, cap)
    ignore = torch.tensor(float("-inf"), dtype=scores_pre.dtype, device=q.device)
    scores_pre = torch.where(pre_mask, scores_pre, ignore).reshape(r, kv, g * n_mult * s * per, -1)
    scores_suf = torch.where(suf_mask, scores_suf, ignore).reshape(r, kv, -1, s)
    pattern = torch.softmax(torch.cat([scores_pre, scores_suf], dim=-1), dim=-1).to(v.dtype)
    p_pre, p_suf = pattern.split([scores_pre.shape[-1], s], dim=-1)
    z_pre = torch.matmul(p_pre, prefix.values)  # [R, kv, G·M·S·per, d_head]
    z_pre = z_pre.reshape(r, kv, g, n_mult, s, per, d_head).permute(2, 0, 3, 4, 1, 5, 6).reshape(n, s, kv, per, d_head)
    p_row = p_suf.reshape(r, kv, g, n_mult, s, per, s).permute(2, 0, 3, 1, 5, 4, 6).reshape(n, kv, per * s, s)
    z_suf = torch.matmul(p_row, v.permute(0, 2, 1, 3))  # [N, kv, per·S, d_head]
    z_suf = z_suf.reshape(n, kv, per, s, d_head).permute(0, 3, 1, 2, 4)
    return (z_pre + z_suf).reshape(n * s, heads * d_head)
