"""Fast propensity engine: shared-prefix KV cache, shared unsteered suffix, resume-at-layer, minimal unembedding.

Same numbers and table as :func:`~interp_steer.evaluation.propensity.compute_propensities` (propensity from the
last prompt token on, A/B logit difference or free-text log-prob difference), computed with far less work:

1. **Prefix once.** Everything before the last prompt token is unsteered, hence identical for every multiplier and
   layer: it runs once per prompt into a key/value cache (:mod:`~interp_steer.evaluation.prefix_cache`).
2. **Suffix once per layer scan.** The suffix (last prompt token + answer prefix ``"("``, or + the completion) runs
   unsteered once on top of the cache, recording ``blocks.L.hook_resid_post`` at every steered layer ``L``.
3. **Resume per layer, as a staircase.** For layer ``L`` the recorded residual plus ``m · v_L`` (all multipliers
   along the batch) resumes at block ``L+1`` — only the layers above ``L`` and only the suffix tokens are
   recomputed. The rows of all steered layers share each block call: rows steered at ``L`` join the batch just
   before block ``L+1``, so a 30-layer scan makes 30 block calls per chunk instead of 435.
4. **Unembed only what is scored.** A/B rows need two columns of ``W_U``; free-text rows need the full
   log-softmax only at the completion positions (both from :mod:`interp_steer.scoring`).

All of it runs under ``torch.inference_mode`` with rows sorted by length and chunked to a memory budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry

from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.tokenization import pad_token_id
from interp_steer.errors import ConfigError, SteeringVectorError
from interp_steer.evaluation.prefix_cache import PrefixCache, build_prefix_cache, right_pad
from interp_steer.evaluation.propensity import (
    RawScore,
    ScoringRow,
    _check_inputs,
    propensity_frame,
    scoring_rows,
    vector_label,
)
from interp_steer.scoring import answer_letter_scores, gathered_completion_logprobs
from interp_steer.steering.hook_names import DEFAULT_SITE, layer_of
from interp_steer.steering.operators import steering_delta
from interp_steer.steering.vector import SteeringVector

DEFAULT_MEMORY_BUDGET_MB = 512
"""Default cap on the cached keys/values of one chunk and one block call (the engine's dominant allocations)."""


@dataclass(frozen=True)
class _Layer:
    """One steered layer: its index, the single-hook vector (for the table) and the direction tensor."""

    layer: int
    vector: SteeringVector
    direction: Float[Tensor, "d_model"]


def _steered_layers(model: HookedTransformer, vectors: SteeringVector | Mapping[int, SteeringVector]) -> list[_Layer]:
    """Normalise ``vectors`` to one resid_post direction per layer, sorted by layer."""
    if isinstance(vectors, SteeringVector):
        chosen = [vectors.select()]
    elif isinstance(vectors, Mapping):
        if not vectors:
            raise ConfigError("vectors is an empty mapping: pass {layer: SteeringVector}")
        chosen = [vec.select(layer) for layer, vec in vectors.items()]
    else:
        raise ConfigError(f"vectors must be a SteeringVector or a {{layer: SteeringVector}} mapping, got {type(vectors).__name__}")
    layers = []
    for vec in chosen:
        vec.check_fits(model)
        (hook_name,) = vec.hook_names
        if not hook_name.endswith("." + DEFAULT_SITE):
            raise SteeringVectorError(
                f"the fast engine steers only at blocks.L.{DEFAULT_SITE}, got {hook_name!r}; use compute_propensities"
            )
        direction = vec.directions[hook_name].to(model.cfg.device, model.cfg.dtype)
        layers.append(_Layer(layer_of(hook_name), vec, direction))
    if len({lay.layer for lay in layers}) != len(layers):
        raise ConfigError("two vectors steer the same layer; pass one vector per layer")
    return sorted(layers, key=lambda lay: lay.layer)


@dataclass(frozen=True)
class _MemoryModel:
    """Bytes per token of the two big allocations: a prefix's cached keys/values (all layers, kept for the chunk)
    and a steered row's per-block copy of one layer's keys/values (plus TransformerLens's grouped-query expansion)."""

    prefix_bytes_per_token: int
    call_bytes_per_token: int

    @classmethod
    def of(cls, cfg) -> "_MemoryModel":
        itemsize = torch.empty((), dtype=cfg.dtype).element_size()
        n_kv = cfg.n_key_value_heads or cfg.n_heads
        return cls(2 * n_kv * cfg.d_head * cfg.n_layers * itemsize, 2 * (2 * n_kv + cfg.n_heads) * cfg.d_head * itemsize)

    def rows_per_call(self, width: int, budget: int) -> int:
        return max(1, budget // (width * self.call_bytes_per_token))


def _chunks(rows: list[ScoringRow], n_mult: int, memory: _MemoryModel, budget: int) -> list[list[ScoringRow]]:
    """Greedy chunks of length-sorted rows whose prefix caches plus one block call of all multipliers fit ``budget``."""
    chunks: list[list[ScoringRow]] = []
    current: list[ScoringRow] = []
    for row in sorted(rows, key=lambda r: (r.steer_from, len(r.ids))):
        width = max([len(r.ids) for r in current] + [len(row.ids)])
        steered_rows = (len(current) + 1) * n_mult
        used = width * ((len(current) + 1) * memory.prefix_bytes_per_token + steered_rows * memory.call_bytes_per_token)
        if current and used > budget:
            chunks.append(current)
            current = []
        current.append(row)
    chunks.append(current)
    return chunks


class _ChunkScorer:
    """Scores the final residual of a chunk's steered rows (rows × multipliers, multiplier-minor)."""

    def __init__(self, model: HookedTransformer, rows: list[ScoringRow], suffix_tokens: Tensor, lengths: Tensor, n_mult: int):
        self.model, self.rows, self.n_mult = model, rows, n_mult
        device = suffix_tokens.device
        repeat = lambda t: t.repeat_interleave(n_mult, dim=0)  # noqa: E731
        ab = [i for i, r in enumerate(rows) if r.letters is not None]
        self.ab_big = None
        if ab:
            self.ab_big = (torch.tensor(ab, device=device)[:, None] * n_mult + torch.arange(n_mult, device=device)).flatten()
            self.ab_letters = repeat(torch.tensor([rows[i].letters for i in ab], device=device))
            self.ab_last = repeat(lengths[ab] - 1)
        ft = [i for i, r in enumerate(rows) if r.letters is None]
        self.ft_rows = ft
        if ft:
            # position p of a suffix predicts its token p+1; rows are (chunk row, multiplier) in big-batch order
            big_row, position, target = [], [], []
            for i in ft:
                n = int(lengths[i]) - 1
                for j in range(n_mult):
                    big_row += [i * n_mult + j] * n
                    position += list(range(n))
                    target += suffix_tokens[i, 1: n + 1].tolist()
            self.ft_big_row = torch.tensor(big_row, device=device)
            self.ft_position = torch.tensor(position, device=device)
            self.ft_target = torch.tensor(target, device=device)

    def __call__(self, final: Float[Tensor, "big pos d_model"], multipliers: Sequence[float]) -> dict[tuple[int, str, float], RawScore]:
        scores: dict[tuple[int, str, float], RawScore] = {}
        if self.ab_big is not None:
            letter_scores = answer_letter_scores(self.model, final[self.ab_big, self.ab_last], self.ab_letters).per_row()
            for big, score in zip(self.ab_big.tolist(), letter_scores):
                row, m = self.rows[big // self.n_mult], float(multipliers[big % self.n_mult])
                scores[(row.sample, row.side, m)] = score
        if self.ft_rows:
            totals = gathered_completion_logprobs(
                self.model, final[self.ft_big_row, self.ft_position], self.ft_target, self.ft_big_row, final.shape[0]
            ).logprob.tolist()
            for i in self.ft_rows:
                for j in range(self.n_mult):
                    scores[(self.rows[i].sample, self.rows[i].side, float(multipliers[j]))] = totals[i * self.n_mult + j]
        return scores


def _run_chunk(
    model: HookedTransformer, rows: list[ScoringRow], layers: list[_Layer], multipliers: Sequence[float], pad: int,
    device, rows_per_call: int,
) -> dict[int, dict]:
    """Scores of one chunk for every steered layer: ``{layer: {(sample, side, multiplier): score}}``."""
    n_layers, n_mult = model.cfg.n_layers, len(multipliers)
    prefixes = list(dict.fromkeys(r.ids[: r.steer_from] for r in rows))
    prefix_index = {p: i for i, p in enumerate(prefixes)}
    cache: PrefixCache = build_prefix_cache(model, prefixes, pad, device)
    row_prefix = torch.tensor([prefix_index[r.ids[: r.steer_from]] for r in rows], device=device)
    suffix = right_pad([r.ids[r.steer_from:] for r in rows], pad, device)

    # the unsteered suffix, once: residuals at every steered layer
    wanted = {f"blocks.{lay.layer}.{DEFAULT_SITE}" for lay in layers}
    resid: dict[str, Tensor] = {}

    def keep(act, hook):
        resid[hook.name] = act

    with model.hooks(fwd_hooks=[(name, keep) for name in wanted]):
        model(suffix.tokens, attention_mask=suffix.attention_mask, past_kv_cache=cache.select(row_prefix),
              stop_at_layer=layers[-1].layer + 1)

    # Staircase: the steered runs of all layers share each block. Rows steered at layer L join the batch just
    # before block L+1, so every block runs once per chunk (in slices of at most `rows_per_call` rows).
    big_prefix = row_prefix.repeat_interleave(n_mult)
    big_mask = torch.cat([cache.attention_mask[big_prefix], suffix.attention_mask.repeat_interleave(n_mult, 0)], dim=1)
    mult = torch.tensor([float(m) for m in multipliers], dtype=model.cfg.dtype, device=device).repeat(len(rows))
    group = len(rows) * n_mult
    by_layer = {lay.layer: lay for lay in layers}
    joined: list[_Layer] = []
    state: Tensor | None = None
    for block_index in range(layers[0].layer + 1, n_layers + 1):
        joining = by_layer.get(block_index - 1)
        if joining is not None:
            start = resid[f"blocks.{joining.layer}.{DEFAULT_SITE}"].repeat_interleave(n_mult, 0)
            start = start + steering_delta(start, joining.direction, mult)  # the suffix starts at the last prompt token
            state = start if state is None else torch.cat([state, start])
            joined.append(joining)
        if block_index < n_layers:
            assert state is not None  # the first steered layer joins before the first block
            state = _run_block(model, block_index, state, cache, big_prefix, big_mask, rows_per_call)
    scorer = _ChunkScorer(model, rows, suffix.tokens, suffix.lengths, n_mult)
    assert state is not None
    return {lay.layer: scorer(state[g * group:(g + 1) * group], multipliers) for g, lay in enumerate(joined)}


def _run_block(
    model: HookedTransformer, block_index: int, state: Float[Tensor, "rows pos d_model"], cache: PrefixCache,
    group_prefix: Int[Tensor, "group"], group_mask: Int[Tensor, "group full_pos"], rows_per_call: int,
) -> Float[Tensor, "rows pos d_model"]:
    """One transformer block on stacked groups of steered rows (row ``r`` uses prefix ``group_prefix[r % group]``)."""
    keys, values = cache.keys[block_index], cache.values[block_index]
    block = model.blocks[block_index]
    outs = []
    for lo in range(0, state.shape[0], rows_per_call):
        within = torch.arange(lo, min(lo + rows_per_call, state.shape[0]), device=state.device) % group_prefix.shape[0]
        prefix = group_prefix[within]
        entry = TransformerLensKeyValueCacheEntry(keys.index_select(0, prefix), values.index_select(0, prefix), frozen=True)
        outs.append(block(state[lo: lo + rows_per_call], past_kv_cache_entry=entry, attention_mask=group_mask[within]))
    return outs[0] if len(outs) == 1 else torch.cat(outs)


@torch.inference_mode()
def fast_propensities(
    model: HookedTransformer,
    pairs: Sequence[ContrastivePair],
    vectors: SteeringVector | Mapping[int, SteeringVector],
    multipliers: Sequence[float],
    *,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    vector_name: str | None = None,
) -> pd.DataFrame:
    """Propensity of every (pair, multiplier, layer), same table as ``compute_propensities`` — much faster.

    ``vectors``: one single-hook vector (``blocks.L.hook_resid_post``), or ``{layer: vector}`` to scan several
    layers in one call (each vector may have many hooks; the one at ``layer`` is used). Steering is added from the
    last prompt token on, one layer at a time. Chunks of samples are sized so their cached keys/values stay under
    ``memory_budget_mb`` (an estimate of the dominant allocations, not a hard limit); ``batch_size`` additionally
    caps the steered rows (sequences × multipliers) of one block call (default: from the budget).
    Columns: :data:`~interp_steer.evaluation.propensity.PROPENSITY_COLUMNS`, one row per (layer, pair, multiplier).
    """
    _check_inputs(model, pairs, multipliers, batch_size or 1)
    if memory_budget_mb <= 0:
        raise ConfigError(f"memory_budget_mb must be > 0, got {memory_budget_mb}")
    layers = _steered_layers(model, vectors)
    device = device or model.cfg.device
    cfg = model.cfg
    memory, budget = _MemoryModel.of(cfg), int(memory_budget_mb * 2**20)
    rows = scoring_rows(model.tokenizer, pairs, n_ctx=cfg.n_ctx)
    chunks = _chunks(rows, len(multipliers), memory, budget)
    pad = pad_token_id(model.tokenizer)
    scores: dict[int, dict] = {lay.layer: {} for lay in layers}
    for chunk in tqdm(chunks, desc="fast propensity", disable=not progress, leave=False):
        rows_per_call = memory.rows_per_call(max(len(r.ids) for r in chunk), budget)
        if batch_size is not None:
            rows_per_call = min(rows_per_call, batch_size)
        for layer, chunk_scores in _run_chunk(model, chunk, layers, multipliers, pad, device, rows_per_call).items():
            scores[layer].update(chunk_scores)
    frames = [
        propensity_frame(pairs, lay.vector, multipliers, scores[lay.layer], vector_name or vector_label(lay.vector))
        for lay in layers
    ]
    return pd.concat(frames, ignore_index=True)
