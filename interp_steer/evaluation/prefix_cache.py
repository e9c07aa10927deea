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
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry

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
